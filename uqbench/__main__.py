from uqbench.bench.cli import main

raise SystemExit(main())
