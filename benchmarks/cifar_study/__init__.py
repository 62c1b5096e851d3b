"""The CIFAR-10 results study behind ``benchmarks/study_cifar.py`` (its command line and docstring).

One module per job, each a thin layer over the ``proxyless`` command line and the library:

``settings``  the study's sizes (quick, full), its searches and constants
``nets``      the study space, the MobileNetV2 baselines at a width, MACs and parameters
``helpers``   small pure functions: gaps, ranks, tables, durations, dataset specs
``runner``    the work folder's state, the ``proxyless`` sub-processes, units run once
``stages``    searches, cross measurements, trainings, the whole run and its report files
``matching``  random architectures measured within +-5 % of a searched net (tilted sampling)
``results``   every number of the report, from the state alone
``figures``   accuracy against latency, the searched architectures side by side
``markdown``  the report's text
"""
