import sys

from proxylessnas.cli import main

sys.exit(main())
