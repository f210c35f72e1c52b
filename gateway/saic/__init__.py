"""The SAIC iSMART API source: session handling, conversion of replies, and remote commands."""
