//! OCI and Docker image data model (being written).
