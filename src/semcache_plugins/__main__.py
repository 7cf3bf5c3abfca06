"""``python -m semcache_plugins`` runs the CLI."""

from ._cli._main import main

raise SystemExit(main())
