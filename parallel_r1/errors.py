"""The base of every error a user can cause and fix (bad config, missing artifact, short batch...).

The CLI prints these as one line and exits with code 2, without a traceback.
"""


class UserFacingError(Exception):
    """An error whose message tells the user what to change."""
