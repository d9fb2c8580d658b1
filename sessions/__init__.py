"""What each nox session does. `noxfile.py` declares the sessions; these modules do the work."""
