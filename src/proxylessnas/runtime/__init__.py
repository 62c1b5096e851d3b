"""What search and training share to run: files written atomically (``atomic``), checkpoints and
random state (``checkpoint``, ``seeding``), safe torch-file reads (``torch_files``), the device
(``devices``), run-folder locks (``runfolder_lock``), stopping on signals (``stopping``), the
resume skeleton of a run folder (``resumable``) and resuming with changed settings
(``resume_changes``), NaN guards (``finite``), several processes (``distributed``) and the
per-epoch ``metrics.jsonl`` record (``metrics``).

The layer sits below spaces, nets, data and everything above them (docs/layers.md): it imports
only :mod:`proxylessnas.errors` and :mod:`proxylessnas.arguments` from the package.
"""
