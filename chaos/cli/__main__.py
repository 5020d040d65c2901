"""python -m chaos.cli"""

from . import main

main()
