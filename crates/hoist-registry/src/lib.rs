//! Distribution API client (being written).
