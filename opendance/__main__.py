import sys

from opendance.cli import main

sys.exit(main())
