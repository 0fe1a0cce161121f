//! `hoist`: build container images from Dockerfiles, for one platform or many.

fn main() {}
