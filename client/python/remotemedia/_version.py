"""_version.py - the client's version, sent to the server as ExecuteRequest.client_version."""
__version__ = "0.1.0"
