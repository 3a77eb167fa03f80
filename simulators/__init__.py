"""The other side of every link: EMV cards, PIN pad, PSP hosts, PoP and platform stand-ins."""
