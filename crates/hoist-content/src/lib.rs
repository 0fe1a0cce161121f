//! The local content store (being written).
