"""Stage plumbing every stage shares: params, one-line errors, whole writes, paths, device."""
