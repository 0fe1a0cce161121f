//! [`Graph`]: vertices in topological order, deduplicated by digest.

use std::collections::HashMap;

use hoist_oci::{Digest, Platform};
use serde::{Deserialize, Serialize};

use crate::op::{FileAction, FileBase, MountSource, Op, Source};
use crate::{Error, Result};

/// A vertex's position in its [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(pub usize);

/// One output of a vertex: what later ops build on. Sources, file ops and merges have one
/// output (0); an exec's output 0 is its root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Output {
    pub vertex: VertexId,
    pub index: usize,
}

impl Output {
    /// Output 0 of `vertex`.
    pub fn of(vertex: VertexId) -> Output {
        Output { vertex, index: 0 }
    }
}

/// An input of a vertex: another vertex's output.
pub type Input = Output;

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    pub op: Op,
    pub inputs: Vec<Input>,
    /// The platform the result depends on (an image's manifest, the binaries an exec runs),
    /// `None` when it depends on none (context sources, downloads, file ops, merges: those
    /// differ between platforms only through their inputs).
    pub platform: Option<Platform>,
    /// What progress shows (`[builder 2/4] RUN make`); not part of the digest.
    pub name: String,
    /// Run even when a cached result exists (`--no-cache-filter`); not part of the digest.
    pub ignore_cache: bool,
    /// The source lines the vertex comes from (a Dockerfile instruction), for errors; not
    /// part of the digest. Kept from the first instruction that made it when two make the
    /// same vertex.
    pub location: Option<SourceRange>,
    /// The sha256 of [`Vertex::definition_bytes`].
    pub digest: Digest,
    /// The exact bytes the digest is of: the JSON of a [`Definition`].
    pub definition_bytes: Vec<u8>,
}

/// A 1-based, inclusive range of lines of the build definition's source (BuildKit's
/// `pb.Range` for a Dockerfile instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceRange {
    pub start: usize,
    pub end: usize,
}

/// What a vertex's digest is computed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub op: Op,
    pub inputs: Vec<InputDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An input by digest, as the definition encodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDefinition {
    pub digest: Digest,
    pub output: usize,
}

/// An arena of vertices. Adding a vertex whose digest is already present returns the
/// existing one, so building the same step twice costs nothing and graphs stay minimal.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    vertices: Vec<Vertex>,
    by_digest: HashMap<Digest, VertexId>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a vertex (or finds the identical one) and returns its output 0.
    ///
    /// Fails when the op refers to an input index the vertex does not have, or an input is
    /// not in this graph. When an identical vertex exists, `ignore_cache` is or-ed into it
    /// and its name is kept.
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        platform: Option<Platform>,
        name: impl Into<String>,
    ) -> Result<Output> {
        self.add_vertex(op, inputs, platform, name.into(), false)
    }

    /// [`Graph::add`] with `ignore_cache` set as given.
    pub fn add_with_cache(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        platform: Option<Platform>,
        name: impl Into<String>,
        ignore_cache: bool,
    ) -> Result<Output> {
        self.add_vertex(op, inputs, platform, name.into(), ignore_cache)
    }

    fn add_vertex(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        platform: Option<Platform>,
        name: String,
        ignore_cache: bool,
    ) -> Result<Output> {
        check_inputs(&op, inputs.len())?;
        let mut input_defs = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let vertex = self
                .vertices
                .get(input.vertex.0)
                .ok_or(Error::UnknownVertex {
                    index: input.vertex.0,
                    count: self.vertices.len(),
                })?;
            input_defs.push(InputDefinition {
                digest: vertex.digest.clone(),
                output: input.index,
            });
        }
        let definition = Definition {
            op: digest_view(&op),
            inputs: input_defs,
            platform: platform.clone(),
        };
        let definition_bytes = serde_json::to_vec(&definition).map_err(|source| Error::Encode {
            op: op.kind(),
            source,
        })?;
        let digest = Digest::sha256_of(&definition_bytes);
        if let Some(&id) = self.by_digest.get(&digest) {
            self.vertices[id.0].ignore_cache |= ignore_cache;
            return Ok(Output::of(id));
        }
        let id = VertexId(self.vertices.len());
        self.by_digest.insert(digest.clone(), id);
        self.vertices.push(Vertex {
            op,
            inputs,
            platform,
            name,
            ignore_cache,
            location: None,
            digest,
            definition_bytes,
        });
        Ok(Output::of(id))
    }

    /// Gives `location` to every vertex added since the graph had `mark` vertices
    /// ([`Graph::len`] taken before adding them) that has none and is not a local source
    /// (a context is read by many instructions and belongs to none). A frontend calls it
    /// after converting one instruction.
    pub fn locate_since(&mut self, mark: usize, location: SourceRange) {
        for vertex in self.vertices.iter_mut().skip(mark) {
            if vertex.location.is_none() && !matches!(vertex.op, Op::Source(Source::Local { .. })) {
                vertex.location = Some(location);
            }
        }
    }

    /// The vertex `id`. Ids come from this graph, so an unknown one is a caller bug and
    /// gives `None`.
    pub fn get(&self, id: VertexId) -> Option<&Vertex> {
        self.vertices.get(id.0)
    }

    /// The vertex with `digest`, if present.
    pub fn find(&self, digest: &Digest) -> Option<VertexId> {
        self.by_digest.get(digest).copied()
    }

    /// Every vertex in the order added, inputs before the vertices using them.
    pub fn vertices(&self) -> impl Iterator<Item = (VertexId, &Vertex)> {
        self.vertices
            .iter()
            .enumerate()
            .map(|(i, v)| (VertexId(i), v))
    }

    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// The vertices `root` depends on, itself included, in topological order.
    pub fn ancestors(&self, root: VertexId) -> Vec<VertexId> {
        let mut seen = vec![false; self.vertices.len()];
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            match seen.get_mut(id.0) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            if let Some(vertex) = self.vertices.get(id.0) {
                stack.extend(vertex.inputs.iter().map(|i| i.vertex));
            }
        }
        // Vertices are stored in topological order already.
        seen.iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| VertexId(i))
            .collect()
    }
}

/// The op as its digest sees it: without the exec's proxy variables.
fn digest_view(op: &Op) -> Op {
    match op {
        Op::Exec(exec) if exec.proxy.is_some() => {
            let mut exec = exec.clone();
            exec.proxy = None;
            Op::Exec(exec)
        }
        other => other.clone(),
    }
}

fn check_inputs(op: &Op, count: usize) -> Result<()> {
    let check = |index: usize| {
        if index < count {
            Ok(())
        } else {
            Err(Error::InputOutOfRange {
                op: op.kind(),
                index,
                count,
            })
        }
    };
    match op {
        Op::Exec(exec) => {
            for mount in &exec.mounts {
                if let MountSource::Input(i) = mount.source {
                    check(i)?;
                }
            }
        }
        Op::File(file) => {
            if let FileBase::Input(i) = file.base {
                check(i)?;
            }
            for action in &file.actions {
                if let FileAction::Copy(copy) = action {
                    check(copy.src)?;
                }
            }
        }
        Op::Source(_) | Op::Merge => {}
    }
    Ok(())
}
