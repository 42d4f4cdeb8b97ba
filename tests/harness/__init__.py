"""Test harness: an IAM policy evaluator and request-to-action mapping (iam), the local AWS endpoint
that audits and enforces them on top of moto (endpoint), and the generator of docs/aws-permissions.md
(permissions_doc)."""
