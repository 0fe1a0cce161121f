//! The command line, as clap types. Names and flags follow buildx where buildx has them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    version,
    about = "Build container images from Dockerfiles, for one platform or many"
)]
pub struct Cli {
    /// State directory (content store, cache); default /var/lib/hoist as root.
    #[arg(long, global = true, env = "HOIST_ROOT")]
    pub root: Option<PathBuf>,
    /// Registry settings file (buildkitd.toml-shaped `[registry."host"]` tables).
    #[arg(
        long = "config",
        global = true,
        env = "HOIST_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Override the configured builder instance (also `HOIST_BUILDER`, `BUILDX_BUILDER`).
    #[arg(long, global = true, value_name = "NAME")]
    pub builder: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process; boxing `BuildArgs` would only add noise where it is matched.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Start a build.
    Build(Box<BuildArgs>),
    /// List the platforms this machine executes (native and binfmt_misc emulators), or
    /// install/uninstall QEMU emulators.
    Binfmt(BinfmtArgs),
    /// Look inside hoist's frontend: the parsed AST and typed instructions.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Commands to work on images in registry.
    #[command(subcommand)]
    Imagetools(ImagetoolsCommand),
    /// Manage local manifest lists and push them to a registry (like `docker manifest`).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Log in to a registry (credentials go to the docker config, ~/.docker/config.json).
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Remove build cache.
    Prune(PruneArgs),
    /// Disk usage of the build cache.
    Du(DuArgs),
    /// Commands to work on build records.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Create a new builder instance.
    Create(CreateArgs),
    /// Set the current builder instance.
    Use(UseArgs),
    /// List builder instances.
    Ls(LsArgs),
    /// Inspect current builder instance.
    Inspect(InspectArgs),
    /// Stop builder instance.
    Stop(StopArgs),
    /// Remove one or more builder instances.
    Rm(RmArgs),
    /// Manage builder instances (the same commands as at the top level).
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Install hoist as the docker CLI's `docker builder` (alias `builder` → `hoist`, and
    /// `~/.docker/cli-plugins/docker-hoist`).
    Install,
    /// Undo `hoist install`.
    Uninstall,
    /// The docker CLI plugin handshake: prints the plugin's metadata.
    #[command(name = "docker-cli-plugin-metadata", hide = true)]
    DockerCliPluginMetadata,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Create a new builder instance.
    Create(CreateArgs),
    /// Set the current builder instance.
    Use(UseArgs),
    /// List builder instances.
    Ls(LsArgs),
    /// Inspect current builder instance.
    Inspect(InspectArgs),
    /// Stop builder instance.
    Stop(StopArgs),
    /// Remove one or more builder instances.
    Rm(RmArgs),
}

/// `hoist create`: buildx's flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Builder instance name.
    #[arg(long)]
    pub name: Option<String>,
    /// Driver to use (available: "embedded", "remote").
    #[arg(long)]
    pub driver: Option<String>,
    /// Create/modify node with given name.
    #[arg(long = "node", value_name = "NODE")]
    pub node: Option<String>,
    /// Fixed platforms for current node.
    #[arg(long = "platform", value_name = "PLATFORMS")]
    pub platforms: Vec<String>,
    /// Options for the driver (`k=v`).
    #[arg(long = "driver-opt", value_name = "OPT")]
    pub driver_opts: Vec<String>,
    /// BuildKit daemon flags.
    #[arg(long = "buildkitd-flags", value_name = "FLAGS")]
    pub buildkitd_flags: Option<String>,
    /// BuildKit daemon config file.
    #[arg(long = "buildkitd-config", value_name = "FILE")]
    pub buildkitd_config: Option<PathBuf>,
    /// Boot builder after creation.
    #[arg(long)]
    pub bootstrap: bool,
    /// Append a node to builder instead of changing it.
    #[arg(long)]
    pub append: bool,
    /// Remove a node from builder instead of changing it.
    #[arg(long)]
    pub leave: bool,
    /// Set the current builder instance.
    #[arg(long = "use")]
    pub use_builder: bool,
    /// `unix://PATH` or `tcp://HOST:PORT` of a BuildKit daemon (remote driver).
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// Set builder as default (hoist has no docker contexts: the same as without).
    #[arg(long)]
    pub default: bool,
    /// The builder to use (default: `--builder`).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Format the output: `table` or `json` (one object a line).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Ensure builder has booted before inspecting.
    #[arg(long)]
    pub bootstrap: bool,
    /// The builder (default: the current one).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The builder (default: the current one).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The builders (default: the current one).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Keep BuildKit state.
    #[arg(long = "keep-state")]
    pub keep_state: bool,
    /// Remove all inactive builders.
    #[arg(long = "all-inactive")]
    pub all_inactive: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BinfmtArgs {
    /// Register QEMU emulators: `all` or a comma-separated list such as
    /// arm64,arm,riscv64,ppc64le,s390x,386,mips64le.
    #[arg(long, value_name = "ARCHS", conflicts_with = "uninstall")]
    pub install: Option<String>,
    /// Remove the binfmt_misc handlers of a comma-separated list of architectures.
    #[arg(long, value_name = "ARCHS")]
    pub uninstall: Option<String>,
    /// Output format of the listing: `table` or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// The binfmt_misc mount to use (tests point it at a private directory).
    #[arg(long, hide = true, env = "HOIST_BINFMT_MISC_DIR", default_value = hoist_engine::binfmt::BINFMT_MISC_DIR)]
    pub binfmt_misc_dir: PathBuf,
    /// Where Debian's qemu-*.conf registration lines are.
    #[arg(long, hide = true, env = "HOIST_BINFMT_CONF_DIR", default_value = hoist_engine::binfmt::BINFMT_CONF_DIR)]
    pub binfmt_conf_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the Dockerfile AST in BuildKit's dump format.
    Parse(DebugFileArgs),
    /// Print the typed instructions, one per line, with their stage.
    Instructions(DebugFileArgs),
    /// Push an image of an OCI layout (a state dir's content store) to a registry.
    #[command(hide = true)]
    PushLayout(PushLayoutArgs),
    /// Pull an image (every platform) from a registry into an OCI layout.
    #[command(hide = true)]
    PullLayout(PullLayoutArgs),
}

#[derive(Debug, Args)]
pub struct DebugFileArgs {
    /// The Dockerfile to read, or `-` for standard input.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct PushLayoutArgs {
    /// The state dir whose `content/` layout holds the image.
    pub layout_root: PathBuf,
    /// The name of the image in the layout's index.json.
    pub name: String,
    /// Where to push it.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct PullLayoutArgs {
    /// What to pull.
    pub source: String,
    /// The state dir whose `content/` layout receives it.
    pub layout_root: PathBuf,
    /// The name to give it in the layout's index.json.
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ImagetoolsCommand {
    /// Show details of an image in the registry.
    Inspect(ImagetoolsInspectArgs),
    /// Create a new image based on source images.
    Create(ImagetoolsCreateArgs),
}

#[derive(Debug, Args)]
pub struct ImagetoolsInspectArgs {
    /// The image reference.
    pub name: String,
    /// Show original, unformatted JSON manifest.
    #[arg(long)]
    pub raw: bool,
    /// Format the output: `json`, or a template such as `{{json .Manifest}}`.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagetoolsCreateArgs {
    /// Sources: references, digests or descriptor JSON.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Set reference for new image.
    #[arg(short = 't', long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Read source descriptor from file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Append to existing manifest.
    #[arg(long = "append")]
    pub append: bool,
    /// Show final image instead of pushing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// When only a single source is specified, prefer outputting an image index or
    /// manifest list instead of performing a carbon copy.
    #[arg(
        long = "prefer-index",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub prefer_index: bool,
    /// Add annotation to the image (`index:k=v`, `manifest-descriptor[linux/amd64]:k=v`).
    #[arg(long = "annotation", value_name = "ANNOTATION")]
    pub annotations: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Create a local manifest list for annotating and pushing to a registry.
    Create(ManifestCreateArgs),
    /// Add additional information to a local image manifest.
    Annotate(ManifestAnnotateArgs),
    /// Display an image manifest, or manifest list.
    Inspect(ManifestInspectArgs),
    /// Push a manifest list to a repository.
    Push(ManifestPushArgs),
    /// Delete one or more manifest lists from local storage.
    Rm(ManifestRmArgs),
}

#[derive(Debug, Args)]
pub struct ManifestCreateArgs {
    /// The manifest list to create.
    #[arg(value_name = "MANIFEST_LIST")]
    pub list: String,
    /// The manifests to put in it.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<String>,
    /// Amend an existing manifest list.
    #[arg(short = 'a', long)]
    pub amend: bool,
    /// Allow communication with an insecure registry.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct ManifestAnnotateArgs {
    /// The manifest list.
    pub list: String,
    /// The manifest in it to annotate.
    pub manifest: String,
    /// Set operating system.
    #[arg(long, default_value = "")]
    pub os: String,
    /// Set architecture.
    #[arg(long, default_value = "")]
    pub arch: String,
    /// Set operating system version.
    #[arg(long = "os-version", default_value = "")]
    pub os_version: String,
    /// Set operating system feature.
    #[arg(long = "os-features", value_delimiter = ',')]
    pub os_features: Vec<String>,
    /// Set architecture variant.
    #[arg(long, default_value = "")]
    pub variant: String,
}

#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// `[MANIFEST_LIST] MANIFEST`.
    #[arg(num_args = 1..=2, required = true, value_name = "REF")]
    pub refs: Vec<String>,
    /// Allow communication with an insecure registry.
    #[arg(long)]
    pub insecure: bool,
    /// Output additional info including layers and platform.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ManifestPushArgs {
    /// The manifest list to push.
    pub list: String,
    /// Remove the local manifest list after push.
    #[arg(short = 'p', long)]
    pub purge: bool,
    /// Allow push to an insecure registry.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct ManifestRmArgs {
    /// The manifest lists to delete.
    #[arg(required = true, value_name = "MANIFEST_LIST")]
    pub lists: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
    /// Username.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password or personal access token.
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

/// `hoist build`: buildx's flags, same names and meanings.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Build context: a directory, an http(s) URL (a tarball, or a Dockerfile), a Git URL
    /// (`#ref:dir`; `.git` kept with `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`), or `-` for stdin (a tar, plain or compressed, or a Dockerfile
    /// with an empty context).
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`); `-` reads it from stdin. With a
    /// URL or a tar on stdin, a relative name is read inside that context.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// Name and optionally a tag (format: `name:tag`).
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Set build-time variables.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Additional build contexts (e.g., name=path): a directory, an http(s) URL (the
    /// downloaded file, as `context`), a Git URL,
    /// `docker-image://REF` for an image, or `oci-layout://DIR[:TAG|@DIGEST]` for an image in an
    /// OCI layout.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Secret to expose to the build (format: `id=mysecret[,src=/local/secret]`, or
    /// `id=ID,env=VAR`; `type=file|env` says how to read a bare `src`).
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// SSH agent socket or keys to expose to the build (format:
    /// `default|<id>[=<socket>|<key>[,<key>]]`; `default` is `$SSH_AUTH_SOCK`).
    #[arg(long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// Allow extra privileged entitlement (`network.host`, `security.insecure`).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Set the networking mode for the RUN instructions during build (`default`, `none`,
    /// `host`).
    #[arg(long, default_value = "default", value_name = "MODE")]
    pub network: String,
    /// Add a custom host-to-IP mapping (format: `host:ip`).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Shared memory size for build containers (e.g. `128m`).
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Ulimit options (format: `type=soft[:hard]`, e.g. `nofile=1024:2048`).
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    pub ulimits: Vec<String>,
    /// Set the parent cgroup for the RUN instructions during build.
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Set target platform for build (comma-separated or repeated).
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// Output destination (format: `type=local,dest=path`).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// External cache sources (e.g., `user/app:cache`, `type=local,src=path/to/dir`).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache export destinations (e.g., `type=registry,ref=user/app:cache,mode=max`,
    /// `type=local,dest=path/to/dir`); a failed export is a warning unless
    /// `ignore-error=false`.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Shorthand for `--output=type=registry`.
    #[arg(long)]
    pub push: bool,
    /// Shorthand for `--output=type=docker`.
    #[arg(long)]
    pub load: bool,
    /// Suppress the build output and print image ID on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set type of progress output (`auto`, `plain`, `tty`, `quiet`, `rawjson`).
    #[arg(
        long,
        env = "BUILDKIT_PROGRESS",
        default_value = "auto",
        value_parser = ["auto", "plain", "tty", "quiet", "rawjson"]
    )]
    pub progress: String,
    /// Write build result metadata to a file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Write the image ID to a file.
    #[arg(long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Always attempt to pull all referenced images. hoist resolves every base image's
    /// tag against its registry on each build anyway; `--pull` also re-hashes the image's
    /// blobs already in the local store and fetches again any missing or corrupt one.
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Add annotation to the image: `KEY=VALUE` (on the manifests), or `TYPES:KEY=VALUE`
    /// with TYPES among `manifest`, `manifest-descriptor`, `index`, `index-descriptor`,
    /// comma-separated, each optionally for one platform (`manifest[linux/arm64]`).
    #[arg(long = "annotation", value_name = "ANNOTATION")]
    pub annotations: Vec<String>,
    /// What runs RUN steps: `builtin` (hoist's own namespaces runtime, needing nothing
    /// installed) or an OCI runtime binary (`runc`, `crun`, or a path), as buildkitd's
    /// `--oci-worker-binary`.
    #[arg(
        long,
        env = "HOIST_RUNTIME",
        default_value = "builtin",
        value_name = "RUNTIME"
    )]
    pub runtime: String,
    /// Build on a BuildKit daemon at this address instead of in process: `unix:///PATH` or
    /// `tcp://HOST:PORT` (buildctl's `--addr`, hoistd or buildkitd), `docker-daemon` (the
    /// BuildKit inside the Docker daemon of `DOCKER_HOST`, else /var/run/docker.sock) or
    /// `docker-daemon://SOCKET`. Local contexts and outputs travel through a session.
    #[arg(long, value_name = "ADDRESS")]
    pub addr: Option<String>,
    /// With `--addr tcp://…`: the CA certificate the daemon's certificate must chain to.
    #[arg(long, value_name = "FILE", requires = "addr")]
    pub tlscacert: Option<PathBuf>,
    /// With `--addr tcp://…`: the client certificate (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "addr")]
    pub tlscert: Option<PathBuf>,
    /// With `--addr tcp://…`: the client certificate's key.
    #[arg(long, value_name = "FILE", requires = "addr")]
    pub tlskey: Option<PathBuf>,
    /// With `--addr tcp://…`: the server name to verify (default: the address's host).
    #[arg(long, value_name = "NAME", requires = "addr")]
    pub tlsservername: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove cache shared with images named in the state dir (BuildKit: include
    /// internal/frontend images).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values: `until=24h` (keep cache used within that long), `id=PREFIX`.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Remove least recently used cache until at most this much is left (e.g. `1gb`).
    #[arg(long = "keep-storage", value_name = "BYTES")]
    pub keep_storage: Option<String>,
    /// Maximum amount of disk space allowed to keep for cache.
    #[arg(long = "max-used-space", value_name = "BYTES")]
    pub max_used_space: Option<String>,
    /// Amount of disk space always allowed to keep for cache.
    #[arg(long = "reserved-space", value_name = "BYTES")]
    pub reserved_space: Option<String>,
    /// Target amount of free disk space after pruning.
    #[arg(long = "min-free-space", value_name = "BYTES")]
    pub min_free_space: Option<String>,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide a more verbose output.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Provide filter values: `id=PREFIX`.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Provide a more verbose output.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// List build records.
    Ls(HistoryLsArgs),
    /// Inspect a build record (the latest when no ref is given).
    Inspect(HistoryRefArgs),
    /// Print the logs of a build record (the latest when no ref is given).
    Logs(HistoryRefArgs),
    /// Remove build records.
    Rm(HistoryRmArgs),
}

#[derive(Debug, Args)]
pub struct HistoryLsArgs {
    /// Format the output: `table` or `json` (one object a line).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Provide filter values (e.g. `status=error`, `name!=app`); keys: ref, name, status.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct HistoryRefArgs {
    /// A build id, or `^N` for the N-th newest build (`^0` is the latest).
    #[arg(value_name = "REF")]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryRmArgs {
    /// The build ids (or `^N`) to remove.
    #[arg(value_name = "REF")]
    pub refs: Vec<String>,
    /// Remove all build records.
    #[arg(long)]
    pub all: bool,
}
