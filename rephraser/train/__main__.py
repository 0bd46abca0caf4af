import sys

from rephraser.train.loop import main

sys.exit(main())
