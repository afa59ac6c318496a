"""``python -m datumflow.storage_service.cli``: the ``datumflow`` command."""

import sys

from datumflow.storage_service.cli.main import main

sys.exit(main())
