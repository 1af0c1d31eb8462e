"""`azauth serve`: the loopback token server, its protocols, listener and detached mode."""
