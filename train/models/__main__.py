"""``python -m train.models fetch URL SHA256 OUT``: fetch pretrained weights into the cache (see pretrained.py)."""
import sys

from .pretrained import main

sys.exit(main())
