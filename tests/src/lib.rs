//! Real-kernel integration tests live in tests/*.rs; this library holds their shared helpers.
