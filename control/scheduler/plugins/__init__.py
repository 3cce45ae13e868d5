"""The filter and score plugins, one module per family (kube-scheduler's default profile)."""
