import sys

from trustgen.cli import main

sys.exit(main())
