//! Dockerfile stages → build graph + image config (in progress).
