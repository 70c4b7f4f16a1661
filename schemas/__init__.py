"""Warren's wire contract: envelope, subjects, errors, encoding and LXD REST shapes."""
