//! COPY and ADD: one file op of copy actions from the context, another stage, an image, a
//! download, a git checkout or heredoc files (BuildKit's `dispatchCopy`).

use hoist_dockerfile::instructions::{self, Chmod, Command, Sources};
use hoist_dockerfile::shell::{Lexer, Options};
use hoist_graph::{
    Copy, FileAction, FileBase, FileMode, FileOp, Mkfile, Op, Output, Owner, Source,
};

use crate::convert::{uppercase_keyword, Converter, StageState};
use crate::image;
use crate::{Error, Result};

/// What a COPY or ADD asks for, once expanded.
struct CopyRequest<'a> {
    sources: Sources,
    excludes: &'a [String],
    /// Where relative sources come from: `None` is the main context.
    from: Option<Option<Output>>,
    is_add: bool,
    chown: Option<String>,
    chmod: Option<Chmod>,
    link: bool,
    parents: bool,
    unpack: Option<bool>,
    checksum: Option<String>,
    keep_git_dir: Option<bool>,
}

/// The inputs of the file op being built.
struct Inputs {
    outputs: Vec<Output>,
}

impl Inputs {
    fn index(&mut self, output: Output) -> usize {
        match self.outputs.iter().position(|x| *x == output) {
            Some(i) => i,
            None => {
                self.outputs.push(output);
                self.outputs.len() - 1
            }
        }
    }
}

impl Converter<'_> {
    pub(crate) fn dispatch_copy(
        &mut self,
        state: &mut StageState,
        copy: &instructions::Copy,
        source: Option<usize>,
        command: &Command,
    ) -> Result<()> {
        let from = match (source, &copy.from) {
            (Some(i), _) => match self.states.get(i).cloned().flatten() {
                Some(src) => Some(src.output),
                None => {
                    return Err(Error::at(
                        command.span,
                        format!(
                            "cannot copy from stage {:?}, it needs to be defined before current stage {:?}",
                            copy.from.clone().unwrap_or_default(),
                            state.name
                        ),
                    ))
                }
            },
            (None, _) => None,
        };
        let request = CopyRequest {
            sources: self.expand_heredocs(state, &copy.sources)?,
            excludes: &copy.excludes,
            from,
            is_add: false,
            chown: copy.chown.clone(),
            chmod: copy.chmod.clone(),
            link: copy.link,
            parents: copy.parents,
            unpack: None,
            checksum: None,
            keep_git_dir: None,
        };
        self.copy(state, request, command)
    }

    pub(crate) fn dispatch_add(
        &mut self,
        state: &mut StageState,
        add: &instructions::Add,
        command: &Command,
    ) -> Result<()> {
        let request = CopyRequest {
            sources: self.expand_heredocs(state, &add.sources)?,
            excludes: &add.excludes,
            from: None,
            is_add: true,
            chown: add.chown.clone(),
            chmod: add.chmod.clone(),
            link: add.link,
            parents: false,
            unpack: add.unpack,
            checksum: add.checksum.clone(),
            keep_git_dir: add.keep_git_dir,
        };
        self.copy(state, request, command)
    }

    /// Heredoc bodies with unquoted delimiters are expanded keeping quotes (BuildKit's
    /// `ExpandRaw`).
    fn expand_heredocs(&self, state: &StageState, sources: &Sources) -> Result<Sources> {
        let raw = Lexer::with_options(
            '\\',
            Options {
                skip_process_quotes: true,
                ..Options::default()
            },
        );
        let env = state.env.clone();
        Ok(sources.expand_contents(&|w: &str| raw.process_word(w, &env))?)
    }

    fn copy(
        &mut self,
        state: &mut StageState,
        request: CopyRequest<'_>,
        command: &Command,
    ) -> Result<()> {
        let span = command.span;
        let dest = image::relative_to_workdir(&state.dir, &request.sources.dest);
        let owner = request.chown.as_deref().map(Owner::parse);
        let mode = request.chmod.as_ref().and_then(|c| match c {
            Chmod::Octal(bits) => Some(FileMode::Octal(*bits)),
            Chmod::Symbolic(s) => Some(FileMode::Symbolic(s.text.clone())),
            Chmod::Unexpanded(_) => None,
        });
        if request.checksum.is_some() {
            if !request.is_add {
                return Err(Error::at(span, "checksum can't be specified for COPY"));
            }
            if request.sources.paths.len() != 1 {
                return Err(Error::at(
                    span,
                    "checksum can't be specified for multiple sources",
                ));
            }
            let src = &request.sources.paths[0];
            if !is_http(src) && !is_git(src) {
                return Err(Error::at(span, "checksum requires HTTP(S) or Git sources"));
            }
        }

        let mut message = String::from(if request.is_add { "ADD" } else { "COPY" });
        if request.parents {
            message.push_str(" --parents");
        }
        if let Some(chown) = &request.chown {
            message.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = &request.chmod {
            message.push_str(&format!(" --chmod={chmod}"));
        }

        let link = request.link && request.chmod.is_none();
        // One number for the step: its sources, its copy and its LINK share it.
        let text = uppercase_keyword(&command.source);
        let name = self.step_name(state, &text);
        let mut inputs = Inputs {
            outputs: Vec::new(),
        };
        let base = match (link, state.output) {
            (false, Some(o)) => FileBase::Input(inputs.index(o)),
            _ => FileBase::Scratch,
        };
        let with_flags = |copy: Copy| Copy {
            owner: owner.clone(),
            mode: mode.clone(),
            exclude_patterns: request.excludes.to_vec(),
            ..copy
        };
        let mut actions = Vec::new();
        for src in &request.sources.paths {
            message.push(' ');
            message.push_str(src);
            if is_git(src) {
                if !request.is_add {
                    return Err(Error::at(span, "source can't be a git ref for COPY"));
                }
                let (remote, fragment) = match src.split_once('#') {
                    Some((r, f)) => (r.to_string(), Some(f.to_string())),
                    None => (src.clone(), None),
                };
                let (reference, subdir) = match fragment {
                    Some(f) => match f.split_once(':') {
                        Some((r, d)) => (
                            (!r.is_empty()).then(|| r.to_string()),
                            (!d.is_empty()).then(|| d.to_string()),
                        ),
                        None => ((!f.is_empty()).then_some(f), None),
                    },
                    None => (None, None),
                };
                let git = self.graph.add(
                    Op::Source(Source::Git {
                        remote,
                        reference,
                        subdir,
                        keep_git_dir: request.keep_git_dir.unwrap_or(false),
                        checksum: request.checksum.clone(),
                    }),
                    Vec::new(),
                    None,
                    name.clone(),
                )?;
                let mut copy = with_flags(Copy::new(inputs.index(git), "/", &dest));
                copy.create_dest_path = true;
                actions.push(FileAction::Copy(copy));
            } else if is_http(src) {
                if !request.is_add {
                    return Err(Error::at(span, "source can't be a URL for COPY"));
                }
                let filename = url_file_name(src);
                let http = self.graph.add(
                    Op::Source(Source::Http {
                        url: src.clone(),
                        filename: filename.clone(),
                        checksum: request.checksum.clone(),
                    }),
                    Vec::new(),
                    None,
                    name.clone(),
                )?;
                let mut copy = with_flags(Copy::new(
                    inputs.index(http),
                    &format!("/{filename}"),
                    &dest,
                ));
                copy.create_dest_path = true;
                copy.attempt_unpack = request.unpack.unwrap_or(false);
                actions.push(FileAction::Copy(copy));
            } else {
                let from = match request.from {
                    Some(Some(o)) => o,
                    Some(None) => self.scratch_output()?,
                    None => {
                        self.ctx_paths.insert(image::join("/", src));
                        self.context()?
                    }
                };
                let mut src_path = src.clone();
                let mut include = Vec::new();
                let mut required = Vec::new();
                if request.parents {
                    let (parent, pattern) = match src.split_once("/./") {
                        Some((p, pat)) => (p.to_string(), pat.to_string()),
                        None => ("/".to_string(), src.clone()),
                    };
                    let pattern = image::normalize_path("/", &pattern, false);
                    if !has_wildcard(&parent) && !has_wildcard(&pattern) {
                        required.push(image::normalize_path(
                            "/",
                            &image::join(&parent, &pattern),
                            false,
                        ));
                    }
                    include.push(pattern.trim_start_matches('/').to_string());
                    src_path = parent;
                }
                let src_path = image::normalize_path("/", &src_path, false);
                let mut copy = with_flags(Copy::new(inputs.index(from), &src_path, &dest));
                copy.follow_symlinks = true;
                copy.dir_contents_only = true;
                copy.include_patterns = include;
                copy.required_paths = required;
                copy.attempt_unpack = request.unpack.unwrap_or(request.is_add);
                copy.create_dest_path = true;
                copy.allow_wildcard = true;
                copy.allow_empty_wildcard = true;
                copy.parents = request.parents;
                actions.push(FileAction::Copy(copy));
            }
        }
        for content in &request.sources.contents {
            message.push_str(&format!(" <<{}", content.path));
            let path = format!("/{}", content.path.trim_start_matches('/'));
            let file = self.graph.add(
                Op::File(FileOp {
                    base: FileBase::Scratch,
                    actions: vec![FileAction::Mkfile(Mkfile {
                        path: path.clone(),
                        data: content.data.clone(),
                        mode: 0o644,
                        owner: None,
                    })],
                }),
                Vec::new(),
                None,
                "preparing inline document",
            )?;
            let mut copy = with_flags(Copy::new(inputs.index(file), &path, &dest));
            copy.create_dest_path = true;
            actions.push(FileAction::Copy(copy));
        }
        message.push(' ');
        message.push_str(&request.sources.dest);

        let copied = self.graph.add_with_cache(
            Op::File(FileOp { base, actions }),
            inputs.outputs,
            None,
            name.clone(),
            state.ignore_cache,
        )?;
        let out = match (link, state.output) {
            (true, Some(below)) => {
                state.steps.reuse_last();
                let link_name = self.step_name(state, &format!("LINK {text}"));
                self.graph.add_with_cache(
                    Op::Merge,
                    vec![below, copied],
                    None,
                    link_name,
                    state.ignore_cache,
                )?
            }
            _ => copied,
        };
        state.output = Some(out);
        state.commit(message, true, true);
        Ok(())
    }

    /// An empty filesystem as a vertex, for copying out of a stage that has no files.
    fn scratch_output(&mut self) -> Result<Output> {
        Ok(self.graph.add(
            Op::File(FileOp {
                base: FileBase::Scratch,
                actions: Vec::new(),
            }),
            Vec::new(),
            None,
            "scratch",
        )?)
    }
}

fn is_http(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git(src)
}

/// Git sources as ADD recognises them: `git@host:repo`, `git://`, `ssh://`, or an HTTP(S)
/// URL whose path ends in `.git` (a fragment may follow).
fn is_git(src: &str) -> bool {
    if src.starts_with("git@") || src.starts_with("git://") || src.starts_with("ssh://") {
        return true;
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        // BuildKit's rule: the URL's path (before any query or fragment) ends in `.git`.
        let path = src.split(['#', '?']).next().unwrap_or(src);
        return path.ends_with(".git");
    }
    false
}

/// The file name of a download: the URL path's last element, `__unnamed__` when none.
fn url_file_name(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let raw = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split_once('/')
        .map_or("", |(_, p)| p);
    // The name is the last element of the decoded path, as Go's url.Parse + path.Base give
    // it (`a%20b.txt` is `a b.txt`).
    let path = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && !path.ends_with('/') && base != "." && base != ".." => {
            base.to_string()
        }
        _ => "__unnamed__".to_string(),
    }
}

/// Whether a COPY source holds a wildcard (`*`, `?`, `[`) that no `\` escapes: the
/// frontend and the engine's copy agree on this through this one function.
pub fn has_wildcard(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => return true,
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified() {
        assert!(is_git("https://github.com/moby/buildkit.git#v0.10.1"));
        assert!(is_git("git@github.com:moby/buildkit.git"));
        assert!(!is_git("https://example.com/file.tar.gz"));
        assert!(is_git("https://example.com/repo.git?ref=v1"));
        assert!(!is_git("https://example.com/repo.git/"));
        assert!(is_http("https://example.com/file.tar.gz"));
        assert_eq!(
            url_file_name("https://example.com/a/file.txt?x=1"),
            "file.txt"
        );
        assert_eq!(url_file_name("https://example.com/"), "__unnamed__");
        assert_eq!(url_file_name("https://example.com"), "__unnamed__");
        assert_eq!(
            url_file_name("https://example.com/dir/a%20b.txt"),
            "a b.txt"
        );
        assert_eq!(url_file_name("https://example.com/x/%2e%2e"), "__unnamed__");
    }
}
