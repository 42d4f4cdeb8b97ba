"""The on-host runner of systemd_s3.backup (``python3 -m systemd_s3_backup``); see __main__.py.
Standard library and boto3 only: Debian's python3 and python3-boto3 run it."""
