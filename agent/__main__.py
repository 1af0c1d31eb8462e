"""``python -m agent`` is the ``azauth`` command."""

from agent._entry import main

main()
