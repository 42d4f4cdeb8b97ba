"""Test harness: an IAM policy evaluator and request-to-action mapping (iam), the local AWS endpoint
that audits and enforces them on top of moto (endpoint), the one helper that starts that endpoint and
isolates the AWS environment for the tests, the benchmarks and the scripts (servers), and the generator
of docs/aws-permissions.md (permissions_doc)."""
