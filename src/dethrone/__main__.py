import sys

from dethrone.cli import main

sys.exit(main())
