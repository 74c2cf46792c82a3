import sys

from crackdesk.cli.main import main

sys.exit(main())
