//! Per-recipient digests (being written).
