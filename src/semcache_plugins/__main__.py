"""``python -m semcache_plugins`` runs the CLI."""

from ._cli import main

raise SystemExit(main())
