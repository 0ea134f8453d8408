import sys

from opendance.commands.main import main

sys.exit(main())
