"""CrackDesk: find the cracked ones among thousands of concrete photos."""

__version__ = "0.1.0"
