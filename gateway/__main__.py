"""``python -m gateway``: serve the LXD API on ``$WARREN_SOCKET``."""

from gateway.app import main

if __name__ == "__main__":
    main()
