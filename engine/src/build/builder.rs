//! The legacy builder on the engine: each stage from its base (an image, pulled when missing
//! or with `--pull`; `scratch`; an earlier stage), each instruction a step whose image is
//! recorded as a child of the one before. `RUN` runs a container of the engine (its runtime,
//! networking and isolation, its output streamed) and stores the container's changes;
//! `COPY`/`ADD` write their layer directly from the context or another image (no container);
//! the rest only change the configuration (a step with an empty layer). A step whose key is in
//! the cache reuses its image. Progress is Docker's legacy stream (`Step N/M : ...`,
//! ` ---> id`); the build stops when its client goes away. No lock is held across a step: the
//! engine's lock is taken for a create or a commit's plan only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, mpsc};

use super::cache::{self, BuildCache};
use super::context::Context;
use super::copy::{self, Apply, Found, LayerTar};
use super::dockerfile::{self, Form, Instruction, flags, form};
use super::metadata::{self, MetaState, env_of, shell_of};
use super::stages::{self, Base, PREDEFINED, Plan, arg_env};
use super::words::process_word;
use super::{BuildError, view};
use crate::container::ops::{Ops, WaitCondition, wait_for};
use crate::container::{CreateOptions, Engine, EngineMachine};
use crate::image::reference::{Digest, Reference};
use crate::image::registry::Registry;
use crate::image::store::{ChildImage, ImageRecord, ImageStore, StepLayer};
use berth_common::id::short_id;

/// The registry client for a registry's name (`docker.io`, `localhost:5000`), carrying the
/// build's credentials for it.
pub type RegistryFor = dyn Fn(&str) -> Registry + Send + Sync;

/// What the builder reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Text for the client (`{"stream": ...}`).
    Stream(String),
    /// `{"aux": ...}` (the built image's ID).
    Aux(Value),
}

/// A build's options (`docker build`'s flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `-f`: the Dockerfile's path in the context.
    pub dockerfile: Option<String>,
    /// `-t`, repeated.
    pub tags: Vec<String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg`: a value, or `None` for a name without one (taken from nowhere).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--rm` (Docker's default): intermediate containers of successful steps removed.
    pub rm: bool,
    /// `--force-rm`: removed after failed steps too.
    pub force_rm: bool,
    /// `--network`.
    pub network: Option<String>,
    /// `--shm-size`, bytes.
    pub shm_size: Option<u64>,
    /// `--ulimit`.
    pub ulimits: Vec<String>,
    /// `--add-host`.
    pub add_hosts: Vec<String>,
    /// `--platform` (`os/arch`).
    pub platform: Option<String>,
    /// `--memory`, bytes.
    pub memory: Option<u64>,
    /// `--cache-from`: images whose steps may stand for this build's.
    pub cache_from: Vec<String>,
}

/// The builder.
#[derive(Debug, Clone)]
pub struct Builder {
    engine: Arc<Mutex<Engine>>,
    ops: Ops<EngineMachine>,
    images: Arc<ImageStore>,
    scratch: PathBuf,
    cache: Arc<BuildCache>,
}

/// A stage as it goes.
struct StageState {
    image: Option<ImageRecord>,
    config: Map<String, Value>,
    meta: MetaState,
    args: Vec<(String, Option<String>)>,
    author: String,
}

struct Run<'a> {
    opts: &'a BuildOptions,
    out: &'a mpsc::Sender<Progress>,
    registry: &'a RegistryFor,
    ctx: &'a Context,
    plan: &'a Plan,
    results: Vec<Option<ImageRecord>>,
    used_args: BTreeSet<String>,
    cache_from: Vec<CacheImage>,
}

/// A `--cache-from` image: its record, its history (created_by, empty layer) and diff IDs.
struct CacheImage {
    image: ImageRecord,
    history: Vec<(String, bool)>,
    diff_ids: Vec<String>,
}

fn history_of(config: &Value) -> Vec<(String, bool)> {
    config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["created_by"].as_str().unwrap_or_default().to_string(),
                        e["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn diff_ids_of(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn say(out: &mpsc::Sender<Progress>, text: impl Into<String>) -> Result<(), BuildError> {
    out.send(Progress::Stream(text.into()))
        .await
        .map_err(|_| BuildError::Cancelled)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn blocking_err(e: tokio::task::JoinError) -> BuildError {
    BuildError::Failed(format!("a build task failed: {e}"))
}

impl Builder {
    /// A builder over the engine's pieces; its cache kept at `cache_path`, its scratch files
    /// (contexts, layers being written) under `scratch`.
    pub fn new(
        engine: Arc<Mutex<Engine>>,
        ops: Ops<EngineMachine>,
        images: Arc<ImageStore>,
        scratch: PathBuf,
        cache_path: PathBuf,
    ) -> Builder {
        // What a build killed with berthd left (contexts, layers being written) goes.
        let _ = crate::tree::remove_tree(&scratch);
        Builder {
            engine,
            ops,
            images,
            scratch,
            cache: Arc::new(BuildCache::open(&cache_path)),
        }
    }

    /// Where contexts are unpacked.
    pub fn scratch(&self) -> &std::path::Path {
        &self.scratch
    }

    /// `docker builder prune`: forgets cached steps whose images nothing else keeps (no
    /// tag, no child, no container) and removes those images; returns their IDs and the bytes
    /// freed.
    pub fn prune(
        &self,
        in_use: impl Fn(&Digest) -> bool,
    ) -> Result<(Vec<String>, u64), BuildError> {
        let cached: BTreeSet<Digest> = self.cache.images().into_iter().collect();
        let (removed, space) = self
            .images
            .prune(false, |id| !cached.contains(id) || in_use(id))
            .map_err(|e| BuildError::Failed(e.to_string()))?;
        let snapshot = self.images.snapshot();
        let gone = self
            .cache
            .retain(|id| snapshot.resolve(&id.to_string()).is_ok());
        let mut ids: Vec<String> = gone.iter().map(ToString::to_string).collect();
        for d in removed.iter().filter_map(|l| l.strip_prefix("Deleted: ")) {
            if !ids.iter().any(|i| i == d) {
                ids.push(d.to_string());
            }
        }
        Ok((ids, space))
    }

    /// Builds from `ctx` with `opts`, reporting to `out`; pulls with `registry`. The image's ID.
    pub async fn build(
        &self,
        ctx: &Context,
        opts: &BuildOptions,
        registry: &RegistryFor,
        out: &mpsc::Sender<Progress>,
    ) -> Result<Digest, BuildError> {
        // File work on this thread, off the runtime's other tasks.
        let text = tokio::task::block_in_place(|| {
            let text = ctx.dockerfile(opts.dockerfile.as_deref())?;
            ctx.apply_ignore()?;
            Ok::<_, BuildError>(text)
        })?;
        let df = dockerfile::parse(&text).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let mut plan = stages::plan(&df, &opts.build_args, opts.target.as_deref())
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        let tags: Vec<Reference> = opts
            .tags
            .iter()
            .map(|t| {
                t.parse::<Reference>()
                    .map_err(|e| BuildError::Invalid(format!("invalid tag {t:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if !opts.labels.is_empty() {
            // Docker's legacy builder adds `--label`s as a last LABEL step.
            let args: Vec<String> = opts
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
                .collect();
            let last = plan.stages.last_mut().expect("a plan has a stage");
            last.instructions.push(Instruction {
                line: 0,
                keyword: "LABEL".into(),
                args: args.join(" "),
            });
        }
        let mut run = Run {
            opts,
            out,
            registry,
            ctx,
            plan: &plan,
            results: Vec::new(),
            used_args: BTreeSet::new(),
            cache_from: Vec::new(),
        };
        // `--cache-from` images the store has (Docker's legacy builder does not pull them).
        for name in &opts.cache_from {
            let Ok(image) = self.images.resolve(name) else {
                say(
                    out,
                    format!("[Warning] cache-from image {name} not found: not used\n"),
                )
                .await?;
                continue;
            };
            let raw: Value = self
                .images
                .blobs()
                .read(&image.id)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            run.cache_from.push(CacheImage {
                history: history_of(&raw),
                diff_ids: diff_ids_of(&raw),
                image,
            });
        }
        let total = plan.steps();
        let mut step = 0;
        for (si, stage) in plan.stages.iter().enumerate() {
            step += 1;
            say(
                out,
                format!("Step {step}/{total} : FROM {}\n", stage.from.args),
            )
            .await?;
            let mut st = self
                .from(&mut run, si, &stage.base, stage.platform.as_deref())
                .await?;
            // The base's ONBUILD triggers run first, and are not inherited.
            let triggers = strings(st.config.get("OnBuild"));
            st.config.insert("OnBuild".into(), Value::Null);
            if !triggers.is_empty() {
                say(
                    out,
                    format!(
                        "# Executing {} build trigger{}\n",
                        triggers.len(),
                        if triggers.len() == 1 { "" } else { "s" }
                    ),
                )
                .await?;
            }
            for t in triggers {
                let parsed = dockerfile::parse(&t)
                    .map_err(|e| BuildError::Invalid(format!("ONBUILD trigger {t:?}: {e}")))?;
                for ins in parsed.instructions {
                    if matches!(ins.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                        return Err(BuildError::Invalid(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            ins.keyword
                        )));
                    }
                    self.step(&mut run, si, &mut st, &ins).await?;
                }
            }
            for ins in &stage.instructions {
                step += 1;
                let t0 = std::time::Instant::now();
                say(
                    out,
                    format!("Step {step}/{total} : {} {}\n", ins.keyword, ins.args),
                )
                .await?;
                self.step(&mut run, si, &mut st, ins)
                    .await
                    .map_err(|e| match e {
                        BuildError::Invalid(m) if ins.line > 0 => {
                            BuildError::Invalid(format!("Dockerfile line {}: {m}", ins.line))
                        }
                        e => e,
                    })?;
                tracing::debug!(
                    "build step {step} ({}) took {:?}",
                    ins.keyword,
                    t0.elapsed()
                );
            }
            run.results.push(st.image);
        }
        let unused: Vec<&String> = opts
            .build_args
            .keys()
            .filter(|k| {
                !run.used_args.contains(*k)
                    && !PREDEFINED.contains(&k.as_str())
                    && !plan.meta_args.iter().any(|(m, _)| m == *k)
            })
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            say(
                out,
                format!(
                    "[Warning] One or more build-args [{}] were not consumed\n",
                    names.join(" ")
                ),
            )
            .await?;
        }
        let Some(image) = run.results.pop().flatten() else {
            return Err(BuildError::Invalid(
                "No image was generated. Is your Dockerfile empty?".into(),
            ));
        };
        out.send(Progress::Aux(json!({"ID": image.id.to_string()})))
            .await
            .map_err(|_| BuildError::Cancelled)?;
        say(
            out,
            format!("Successfully built {}\n", short_id(&image.id.to_string())),
        )
        .await?;
        for t in &tags {
            self.images
                .tag(&image.id.to_string(), &t.to_string())
                .map_err(|e| BuildError::Failed(e.to_string()))?;
            say(
                out,
                format!("Successfully tagged {}\n", t.familiar_name_with_tag()),
            )
            .await?;
        }
        Ok(image.id)
    }

    /// Looks up (pulling when missing, or always with `--pull`) image `name`.
    async fn image(
        &self,
        run: &mut Run<'_>,
        name: &str,
        pull: bool,
    ) -> Result<ImageRecord, BuildError> {
        if !pull {
            if let Ok(rec) = self.images.resolve(name) {
                return Ok(rec);
            }
        }
        let r: Reference = name
            .parse()
            .map_err(|e| BuildError::Invalid(format!("invalid reference format {name:?}: {e}")))?;
        let platform = run.opts.platform.as_deref().and_then(|p| p.split_once('/'));
        let sink: crate::image::registry::progress::Sink = Arc::new(|_| {});
        let client = (run.registry)(&r.registry);
        let pulled = crate::image::registry::pull::pull(
            &client,
            &self.images,
            &r.to_string(),
            platform,
            sink,
        )
        .await;
        match pulled {
            Ok(p) => {
                say(
                    run.out,
                    format!(
                        "{}: Pulling from {}\nStatus: Downloaded newer image for {}\n",
                        r.tag.clone().unwrap_or_default(),
                        r.familiar_name(),
                        r.familiar_name_with_tag()
                    ),
                )
                .await?;
                self.images
                    .resolve(&p.id.to_string())
                    .map_err(|e| BuildError::Failed(e.to_string()))
            }
            // `--pull` of an image the store has, from a registry that cannot be reached: the
            // error names the registry.
            Err(e) => Err(BuildError::Failed(format!(
                "pull access denied or unreachable for {name}: {e}"
            ))),
        }
    }

    async fn from(
        &self,
        run: &mut Run<'_>,
        _si: usize,
        base: &Base,
        platform: Option<&str>,
    ) -> Result<StageState, BuildError> {
        let _ = platform;
        let image = match base {
            Base::Scratch => None,
            Base::Stage(i) => run.results[*i].clone(),
            Base::Image(name) => Some(self.image(run, name, run.opts.pull).await?),
        };
        let config = match &image {
            Some(img) => {
                let raw: Value = serde_json::from_slice(
                    &self
                        .images
                        .blobs()
                        .read(&img.id)
                        .map_err(|e| BuildError::Failed(e.to_string()))?,
                )
                .map_err(|e| BuildError::Failed(format!("the base image's config: {e}")))?;
                say(
                    run.out,
                    format!(" ---> {}\n", short_id(&img.id.to_string())),
                )
                .await?;
                raw.get("config")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            }
            None => Map::new(),
        };
        let mut config = config;
        // Docker's builder writes a default PATH into images made from nothing.
        if !env_of(&config).iter().any(|e| e.starts_with("PATH=")) {
            let mut env = env_of(&config);
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
            config.insert("Env".into(), json!(env));
        }
        Ok(StageState {
            image,
            config,
            meta: MetaState::default(),
            args: Vec::new(),
            author: String::new(),
        })
    }

    /// The build arguments a stage's step sees (`K=V`), predefined ones given to the build
    /// included.
    fn step_args(run: &Run<'_>, st: &StageState) -> Vec<(String, Option<String>)> {
        let mut args = st.args.clone();
        for p in PREDEFINED {
            if let Some(Some(v)) = run.opts.build_args.get(*p) {
                if !args.iter().any(|(k, _)| k == p) {
                    args.push((p.to_string(), Some(v.clone())));
                }
            }
        }
        args
    }

    async fn step(
        &self,
        run: &mut Run<'_>,
        si: usize,
        st: &mut StageState,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        let escape = run.plan.escape;
        match ins.keyword.as_str() {
            "ARG" => {
                let env: Vec<String> = arg_env(&st.args)
                    .into_iter()
                    .chain(env_of(&st.config))
                    .collect();
                let (name, default) = stages::arg_decl(ins, &env, escape)
                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                // A name declared before the first FROM brings its value in.
                let default = default.or_else(|| {
                    run.plan
                        .meta_args
                        .iter()
                        .find(|(k, _)| *k == name)
                        .and_then(|(_, v)| v.clone())
                });
                let value = stages::arg_value(&name, default, &run.opts.build_args);
                run.used_args.insert(name.clone());
                st.args.retain(|(k, _)| *k != name);
                st.args.push((name, value));
                self.config_step(run, st, &format!("ARG {}", ins.args))
                    .await
            }
            "MAINTAINER" => {
                let env: Vec<String> = arg_env(&st.args)
                    .into_iter()
                    .chain(env_of(&st.config))
                    .collect();
                st.author = process_word(&ins.args, &env, escape)
                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                self.config_step(run, st, &format!("MAINTAINER {}", st.author))
                    .await
            }
            "RUN" => self.run_step(run, st, ins).await,
            "COPY" | "ADD" => self.copy_step(run, si, st, ins).await,
            "FROM" => Err(BuildError::Invalid("FROM inside a stage".into())),
            _ => {
                let args = arg_env(&Self::step_args(run, st));
                metadata::apply_with(&mut st.config, ins, escape, &mut st.meta, &args)
                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                self.config_step(run, st, &format!("{} {}", ins.keyword, ins.args))
                    .await
            }
        }
    }

    /// Records a step that only changed the configuration.
    async fn config_step(
        &self,
        run: &mut Run<'_>,
        st: &mut StageState,
        text: &str,
    ) -> Result<(), BuildError> {
        let mut cmd = shell_of(&st.config);
        cmd.push("#(nop) ".into());
        cmd.push(text.to_string());
        let created_by = cmd.join(" ");
        let key = step_key(st, &created_by);
        if self.cached(run, st, &key, &created_by, &cmd).await? {
            return Ok(());
        }
        self.commit(run, st, key, &created_by, cmd, None).await
    }

    /// Records in the cache that step `key` made `rec` (the file written off the runtime).
    async fn remember(&self, key: &str, rec: &ImageRecord) -> Result<(), BuildError> {
        let (cache, key, id) = (self.cache.clone(), key.to_string(), rec.id.clone());
        tokio::task::spawn_blocking(move || cache.put(key, id))
            .await
            .map_err(blocking_err)
    }

    /// A step's image from the cache (`key`), or made from a `--cache-from` image whose history
    /// continues the stage's image's with this step: `true` when there is one (now the stage's).
    async fn cached(
        &self,
        run: &Run<'_>,
        st: &mut StageState,
        key: &str,
        created_by: &str,
        container_cmd: &[String],
    ) -> Result<bool, BuildError> {
        if run.opts.no_cache {
            return Ok(false);
        }
        let mut found = self
            .cache
            .get(key)
            .and_then(|hit| self.images.resolve(&hit.to_string()).ok());
        if found.is_none() && !run.cache_from.is_empty() {
            found = self
                .step_from_cache_images(run, st, created_by, container_cmd)
                .await?;
            if let Some(rec) = &found {
                self.remember(key, rec).await?;
            }
        }
        let Some(rec) = found else {
            return Ok(false);
        };
        say(
            run.out,
            format!(
                " ---> Using cache\n ---> {}\n",
                short_id(&rec.id.to_string())
            ),
        )
        .await?;
        st.image = Some(rec);
        Ok(true)
    }

    /// The step made from a `--cache-from` image: one whose history and layers begin with the
    /// stage image's and whose next history entry is this step; its layer (if the step has
    /// one) is reused on the stage's image.
    async fn step_from_cache_images(
        &self,
        run: &Run<'_>,
        st: &StageState,
        created_by: &str,
        container_cmd: &[String],
    ) -> Result<Option<ImageRecord>, BuildError> {
        let (history, diffs) = match &st.image {
            Some(img) => {
                let raw: Value = self
                    .images
                    .blobs()
                    .read(&img.id)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                (history_of(&raw), diff_ids_of(&raw))
            }
            None => (Vec::new(), Vec::new()),
        };
        for c in &run.cache_from {
            if c.history.len() <= history.len()
                || c.history[..history.len()] != history[..]
                || c.diff_ids.len() < diffs.len()
                || c.diff_ids[..diffs.len()] != diffs[..]
            {
                continue;
            }
            let (next_by, empty) = &c.history[history.len()];
            if next_by != created_by {
                continue;
            }
            let layer = if *empty {
                StepLayer::Empty
            } else {
                match c.image.layers.get(diffs.len()) {
                    Some(l) => StepLayer::Stored(l.clone()),
                    None => continue,
                }
            };
            let mut container_config = st.config.clone();
            container_config.insert("Cmd".into(), json!(container_cmd));
            let child = step_child(st, container_config, String::new(), created_by.to_string());
            let store = self.images.clone();
            let parent = st.image.as_ref().map(|i| i.id.clone());
            let rec = tokio::task::spawn_blocking(move || {
                store.commit_step::<std::fs::File>(parent.as_ref(), layer, child, None)
            })
            .await
            .map_err(blocking_err)?
            .map_err(|e| BuildError::Failed(e.to_string()))?;
            return Ok(Some(rec));
        }
        Ok(None)
    }

    /// Stores `layer` (a tar file; none: an empty layer) on the stage's image as the step
    /// `key`, whose cache was looked at already.
    async fn commit(
        &self,
        run: &mut Run<'_>,
        st: &mut StageState,
        key: String,
        created_by: &str,
        container_cmd: Vec<String>,
        layer: Option<std::fs::File>,
    ) -> Result<(), BuildError> {
        let parent = st.image.as_ref().map(|i| i.id.clone());
        let mut container_config = st.config.clone();
        container_config.insert("Cmd".into(), json!(container_cmd));
        let child = step_child(st, container_config, String::new(), created_by.to_string());
        let store = self.images.clone();
        let layer = match layer {
            Some(f) => StepLayer::Tar(f),
            None => StepLayer::Empty,
        };
        let rec = tokio::task::spawn_blocking(move || {
            store.commit_step(parent.as_ref(), layer, child, None)
        })
        .await
        .map_err(blocking_err)?
        .map_err(|e| BuildError::Failed(e.to_string()))?;
        self.remember(&key, &rec).await?;
        say(
            run.out,
            format!(" ---> {}\n", short_id(&rec.id.to_string())),
        )
        .await?;
        st.image = Some(rec);
        Ok(())
    }

    async fn run_step(
        &self,
        run: &mut Run<'_>,
        st: &mut StageState,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        let Some(image) = st.image.clone() else {
            return Err(BuildError::Invalid(
                "RUN on an empty image (FROM scratch): there is nothing to run".into(),
            ));
        };
        let (fl, rest) = flags(&ins.args, run.plan.escape).map_err(BuildError::Invalid)?;
        if let Some((k, _)) = fl.first() {
            return Err(BuildError::Invalid(format!(
                "RUN: unknown flag: --{k} (berth's builder takes none: --mount, --network and --security are BuildKit's)"
            )));
        }
        let cmd: Vec<String> = match form(&rest) {
            Form::Json(v) => v,
            Form::Shell(s) => {
                let mut v = shell_of(&st.config);
                v.push(s);
                v
            }
        };
        // Build arguments reach the command's environment (below ENV of the same name) and
        // its history entry (`|N K=V ...`), as Docker's.
        let env = env_of(&st.config);
        let mut args: Vec<(String, String)> = Self::step_args(run, st)
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .filter(|(k, _)| {
                !env.iter()
                    .any(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
            })
            .collect();
        args.sort();
        let recorded: Vec<(String, String)> = args
            .iter()
            .filter(|(k, _)| !PREDEFINED.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut saved = Vec::new();
        if !recorded.is_empty() {
            saved.push(format!("|{}", recorded.len()));
            saved.extend(recorded.iter().map(|(k, v)| format!("{k}={v}")));
        }
        saved.extend(cmd.iter().cloned());
        let created_by = saved.join(" ");
        let parent = image.id.clone();
        let key = step_key(st, &created_by);
        if self.cached(run, st, &key, &created_by, &saved).await? {
            return Ok(());
        }
        let mut run_env = env.clone();
        run_env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        let text = |k: &str| {
            st.config
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let ulimits = run
            .opts
            .ulimits
            .iter()
            .map(|u| {
                u.parse()
                    .map_err(|e| BuildError::Invalid(format!("invalid --ulimit {u:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let opts = CreateOptions {
            image: parent.to_string(),
            cmd: cmd.clone(),
            entrypoint: Some(vec![String::new()]),
            env: run_env,
            workdir: text("WorkingDir"),
            user: text("User"),
            network: run
                .opts
                .network
                .clone()
                .filter(|n| !n.is_empty() && n != "default"),
            add_hosts: run.opts.add_hosts.clone(),
            shm_size: run.opts.shm_size,
            memory: run.opts.memory,
            ulimits,
            attach_stdout: true,
            attach_stderr: true,
            // A build's container runs its command, never the image's health check.
            healthcheck: Some(berth_api::container_create::HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // The image is read and the options checked without the engine's lock.
        let ctx = self.engine.lock().await.create_context();
        let prepared = tokio::task::spawn_blocking(move || ctx.prepare(opts))
            .await
            .map_err(|e| BuildError::Failed(format!("preparing the step's container: {e}")))?
            .map_err(|e| BuildError::Failed(e.to_string()))?;
        let id = self
            .engine
            .lock()
            .await
            .create_prepared(prepared)
            .map_err(|e| BuildError::Failed(e.to_string()))?;
        // From here every way out removes the container (and its anonymous volumes), but a
        // failed command's without --force-rm, which Docker leaves for inspection.
        let outcome = self
            .run_and_commit(run, st, &id, &cmd, saved, created_by)
            .await;
        let remove = match &outcome {
            Ok(_) => run.opts.rm || run.opts.force_rm,
            Err((_, failed_command)) => !failed_command || run.opts.force_rm,
        };
        if remove {
            let _ = self.ops.remove(&id, true, true).await;
        }
        let rec = outcome.map_err(|(e, _)| e)?;
        if remove {
            say(
                run.out,
                format!("Removing intermediate container {}\n", short_id(&id)),
            )
            .await?;
        }
        self.remember(&key, &rec).await?;
        say(
            run.out,
            format!(" ---> {}\n", short_id(&rec.id.to_string())),
        )
        .await?;
        st.image = Some(rec);
        Ok(())
    }

    /// Runs a RUN step's container and stores its changes. The error says whether the
    /// command itself failed (the container is then kept unless --force-rm).
    async fn run_and_commit(
        &self,
        run: &Run<'_>,
        st: &StageState,
        id: &str,
        cmd: &[String],
        saved: Vec<String>,
        created_by: String,
    ) -> Result<ImageRecord, (BuildError, bool)> {
        let other = |e: BuildError| (e, false);
        let (log_path, rx) = {
            let e = self.engine.lock().await;
            let rx = e
                .subscribe(id)
                .map_err(|e| other(BuildError::Failed(e.to_string())))?;
            (e.log_path(id), rx)
        };
        say(run.out, format!(" ---> Running in {}\n", short_id(id)))
            .await
            .map_err(other)?;
        let code = self
            .run_container(run, id, &log_path, rx)
            .await
            .map_err(other)?;
        if code != 0 {
            return Err((
                BuildError::Failed(format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                )),
                true,
            ));
        }
        let mut container_config = st.config.clone();
        container_config.insert("Cmd".into(), json!(saved));
        let child = step_child(st, container_config, id.to_string(), created_by);
        let plan = self
            .engine
            .lock()
            .await
            .commit_plan(id)
            .map_err(|e| other(BuildError::Failed(e.to_string())))?;
        let store = self.images.clone();
        tokio::task::spawn_blocking(move || plan.store(&store, child, None, false))
            .await
            .map_err(|e| other(blocking_err(e)))?
            .map_err(|e| other(BuildError::Failed(e.to_string())))
    }

    /// Starts container `id`, streams its output from its log, and waits for its exit code.
    async fn run_container(
        &self,
        run: &Run<'_>,
        id: &str,
        log_path: &std::path::Path,
        rx: tokio::sync::watch::Receiver<crate::container::Published>,
    ) -> Result<i32, BuildError> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
                what: "making the step's log directory".into(),
                source,
            })?;
        }
        let mut watch =
            crate::container::logs::LogWatch::new(log_path).map_err(|source| BuildError::Io {
                what: "watching the step's output".into(),
                source,
            })?;
        let mut follower = crate::container::logs::LogFollower::from_end(log_path);
        self.ops
            .start(id)
            .await
            .map_err(|e| BuildError::Failed(e.to_string()))?;
        let wait = wait_for(rx, WaitCondition::NextExit);
        tokio::pin!(wait);
        let code = loop {
            tokio::select! {
                code = &mut wait => break code.unwrap_or(-1),
                // The client went away: the step stops (its container is removed by the
                // caller) instead of running on for nobody.
                () = run.out.closed() => return Err(BuildError::Cancelled),
                r = watch.changed() => {
                    r.map_err(|source| BuildError::Io { what: "watching the step's output".into(), source })?;
                    Self::forward(run, &mut follower).await?;
                }
            }
        };
        Self::forward(run, &mut follower).await?;
        Ok(code)
    }

    async fn forward(
        run: &Run<'_>,
        follower: &mut crate::container::logs::LogFollower,
    ) -> Result<(), BuildError> {
        loop {
            let lines = follower.poll(256).map_err(|source| BuildError::Io {
                what: "reading the step's output".into(),
                source,
            })?;
            if lines.is_empty() {
                return Ok(());
            }
            let text: String = lines.into_iter().map(|l| l.log).collect();
            say(run.out, text).await?;
        }
    }

    async fn copy_step(
        &self,
        run: &mut Run<'_>,
        si: usize,
        st: &mut StageState,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        let k = ins.keyword.as_str();
        let escape = run.plan.escape;
        let env: Vec<String> = arg_env(&Self::step_args(run, st))
            .into_iter()
            .chain(env_of(&st.config))
            .collect();
        let (fl, rest) = flags(&ins.args, escape).map_err(BuildError::Invalid)?;
        let mut from = None;
        let mut chown = None;
        let mut chmod = None;
        for (name, v) in fl {
            let v =
                process_word(&v, &env, escape).map_err(|e| BuildError::Invalid(e.to_string()))?;
            match (name.as_str(), k) {
                ("from", "COPY") => from = Some(v),
                ("chown", _) => chown = Some(v),
                ("chmod", _) => chmod = Some(copy::parse_chmod(&v).map_err(BuildError::Invalid)?),
                (other, _) => {
                    return Err(BuildError::Invalid(format!(
                        "{k}: unknown flag: --{other} (valid: {})",
                        if k == "COPY" {
                            "--from, --chown, --chmod"
                        } else {
                            "--chown, --chmod"
                        }
                    )));
                }
            }
        }
        let words: Vec<String> = match form(&rest) {
            Form::Json(v) => v
                .iter()
                .map(|w| process_word(w, &env, escape))
                .collect::<Result<_, _>>()
                .map_err(|e| BuildError::Invalid(e.to_string()))?,
            Form::Shell(s) => super::words::process_words(&s, &env, escape)
                .map_err(|e| BuildError::Invalid(e.to_string()))?,
        };
        if words.len() < 2 {
            return Err(BuildError::Invalid(format!(
                "{k} requires at least two arguments, but only one was provided. Destination could not be determined."
            )));
        }
        let (srcs, dest) = words.split_at(words.len() - 1);
        let workdir = st
            .config
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (dest, dest_is_dir) = copy::destination(&dest[0], &workdir);
        // Where the files come from, and the part of the key that stands for them.
        enum Src {
            Context(Vec<copy::Source>),
            Image(Box<Spooled>),
            Url(tempfile::TempPath, String),
        }
        let mut sources = Vec::new();
        let mut key_parts = Vec::new();
        let mut count = 0usize;
        for s in srcs {
            if let Some(name) = &from {
                let rec = match run.plan.stage_named(name, si) {
                    Some(i) => run.results[i].clone().ok_or_else(|| {
                        BuildError::Invalid(format!("{k} --from={name}: that stage made no image"))
                    })?,
                    None => self.image(run, name, false).await?,
                };
                if copy::has_wildcards(s) {
                    return Err(BuildError::Invalid(format!(
                        "{k} --from={name} {s}: wildcards in sources from another image are not supported by berth's builder; name the path"
                    )));
                }
                // Read now: the key is the files' content (a stage rebuilt the same still hits).
                let images = self.images.clone();
                let work = self.scratch.join("layers");
                let path = s.clone();
                let kk = k.to_string();
                let spooled = tokio::task::spawn_blocking(move || {
                    spool_source(&images, &rec, &path, &work, &kk)
                })
                .await
                .map_err(blocking_err)??;
                key_parts.push(format!("from:{}:{s}", spooled.sum));
                sources.push(Src::Image(Box::new(spooled)));
                count += 1;
            } else if k == "ADD" && (s.starts_with("http://") || s.starts_with("https://")) {
                // Downloaded at every build and keyed by its content, as Docker's.
                let (file, name) = self.download(s).await?;
                let path = file.to_path_buf();
                let sum = tokio::task::spawn_blocking(move || {
                    copy::checksum(&[copy::Source {
                        rel: String::new(),
                        path,
                    }])
                })
                .await
                .map_err(blocking_err)??;
                key_parts.push(format!("url:{s}:{sum}"));
                sources.push(Src::Url(file, name));
                count += 1;
            } else if s.contains("://") || s.starts_with("git@") {
                return Err(BuildError::Invalid(format!(
                    "{k} {s}: only local files{} are sources",
                    if k == "ADD" { " and http(s) URLs" } else { "" }
                )));
            } else {
                let root = run.ctx.root();
                let ctx = run.ctx;
                let found =
                    tokio::task::block_in_place(|| copy::select(&root, s, |r| ctx.resolve(r), k))?;
                count += found.len();
                let sum = {
                    let found = found.clone();
                    tokio::task::spawn_blocking(move || copy::checksum(&found))
                        .await
                        .map_err(blocking_err)??
                };
                key_parts.push(format!("{s}:{sum}"));
                sources.push(Src::Context(found));
            }
        }
        if count > 1 && !dest_is_dir {
            return Err(BuildError::Invalid(format!(
                "When using {k} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let hash = {
            use sha2::Digest as _;
            let h = sha2::Sha256::digest(key_parts.join("\0").as_bytes());
            h.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let kind = if count > 1 {
            "multi"
        } else if matches!(sources.first(), Some(Src::Context(v)) if v.len() == 1 && v[0].path.is_dir())
        {
            "dir"
        } else {
            "file"
        };
        let mut text = format!("{k} ");
        if let Some(f) = &from {
            text.push_str(&format!("--from={f} "));
        }
        if let Some(c) = &chown {
            text.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = chmod {
            text.push_str(&format!("--chmod={m:o} "));
        }
        text.push_str(&format!(
            "{kind}:{hash} in {dest}{} ",
            if dest_is_dir && dest != "/" { "/" } else { "" }
        ));
        let mut cmd = shell_of(&st.config);
        cmd.push(format!("#(nop) {text}"));
        let created_by = cmd.join(" ");
        let key = step_key(st, &created_by);
        if self.cached(run, st, &key, &created_by, &cmd).await? {
            return Ok(());
        }
        let images = self.images.clone();
        let work = self.scratch.join("layers");
        let parent_image = st.image.clone();
        let add = k == "ADD";
        let layer = tokio::task::spawn_blocking(move || -> Result<std::fs::File, BuildError> {
            let io = |what: &str| {
                let what = what.to_string();
                move |source| BuildError::Io { what, source }
            };
            std::fs::create_dir_all(&work).map_err(io("making the build's layer directory"))?;
            let view = view::open(
                images.snapshots(),
                parent_image.as_ref(),
                &work,
                "the image being built",
            )
            .map_err(io("opening the image being built"))?;
            let (uid, gid) = match &chown {
                Some(c) => chown_ids(&view, c)?,
                None => (0, 0),
            };
            let apply = Apply {
                uid,
                gid,
                mode: chmod,
            };
            let file = tempfile::tempfile_in(&work).map_err(io("making the layer's file"))?;
            let mut layer = LayerTar::new(std::io::BufWriter::new(file), &view, apply);
            let dir_target = |layer: &LayerTar<'_, _>| -> Result<String, BuildError> {
                let (real, found) = layer.lookup(&dest, true)?;
                if found == Found::Other {
                    return Err(BuildError::Invalid(format!(
                        "cannot copy to non-directory: {dest}"
                    )));
                }
                Ok(real)
            };
            // A file's path: in the destination when it is (or is written as) a directory.
            let file_target = |layer: &LayerTar<'_, _>, name: &str| -> Result<String, BuildError> {
                let (real, found) = layer.lookup(&dest, true)?;
                if dest_is_dir || count > 1 || found == Found::Dir {
                    if found == Found::Other {
                        return Err(BuildError::Invalid(format!(
                            "cannot copy to non-directory: {dest}"
                        )));
                    }
                    Ok(format!("{}/{name}", real.trim_end_matches('/')))
                } else {
                    Ok(real)
                }
            };
            let parent_of = |p: &str| {
                p.rsplit_once('/')
                    .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d })
                    .to_string()
            };
            for s in &sources {
                match s {
                    Src::Context(found) => {
                        for f in found {
                            let meta = std::fs::symlink_metadata(&f.path)
                                .map_err(io("reading the build context"))?;
                            if meta.is_dir() {
                                let t = dir_target(&layer)?;
                                layer.parents(&parent_of(&t))?;
                                layer.host(&f.path, &t)?;
                            } else if add && meta.is_file() && is_archive(&f.path) {
                                let t = dir_target(&layer)?;
                                layer.parents(&t)?;
                                let a = std::fs::File::open(&f.path)
                                    .map_err(io("reading an archive of the context"))?;
                                let r = crate::image::layer::decompress(a)
                                    .map_err(io("reading an archive of the context"))?;
                                layer.from_tar(r, ".", &t)?;
                            } else {
                                let name = f.rel.rsplit('/').next().unwrap_or(&f.rel).to_string();
                                let t = file_target(&layer, &name)?;
                                layer.parents(&parent_of(&t))?;
                                layer.host(&f.path, &t)?;
                            }
                        }
                    }
                    Src::Url(file, name) => {
                        let t = file_target(&layer, name)?;
                        layer.parents(&parent_of(&t))?;
                        layer.host(file, &t)?;
                    }
                    Src::Image(spooled) => {
                        let mut spool = spooled
                            .spool
                            .try_clone()
                            .map_err(io("reading the spool file"))?;
                        spool.rewind().map_err(io("reading the spool file"))?;
                        let t = if spooled.is_dir {
                            dir_target(&layer)?
                        } else {
                            file_target(&layer, &spooled.original)?
                        };
                        layer.parents(&parent_of(&t))?;
                        layer.from_tar(std::io::BufReader::new(spool), &spooled.name, &t)?;
                    }
                }
            }
            let mut w = layer.finish().map_err(io("writing the layer"))?;
            w.flush().map_err(io("writing the layer"))?;
            let mut file = w.into_inner().map_err(|e| BuildError::Io {
                what: "writing the layer".into(),
                source: e.into_error(),
            })?;
            file.rewind().map_err(io("writing the layer"))?;
            Ok(file)
        })
        .await
        .map_err(blocking_err)??;
        self.commit(run, st, key, &created_by, cmd, Some(layer))
            .await
    }

    /// Downloads `url` for `ADD` into a scratch file, named as the URL's last segment.
    async fn download(&self, url: &str) -> Result<(tempfile::TempPath, String), BuildError> {
        let name = url
            .split(['?', '#'])
            .next()
            .unwrap_or(url)
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("download")
            .to_string();
        let fail = |e: &dyn std::fmt::Display| {
            BuildError::Failed(format!("ADD failed: downloading {url}: {e}"))
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| fail(&e))?;
        let mut resp = client.get(url).send().await.map_err(|e| fail(&e))?;
        if !resp.status().is_success() {
            return Err(fail(&format!("the server answered {}", resp.status())));
        }
        std::fs::create_dir_all(&self.scratch).map_err(|source| BuildError::Io {
            what: "making the scratch directory".into(),
            source,
        })?;
        let mut file =
            tempfile::NamedTempFile::new_in(&self.scratch).map_err(|source| BuildError::Io {
                what: "making the download's file".into(),
                source,
            })?;
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&e))? {
            file.write_all(&chunk).map_err(|source| BuildError::Io {
                what: "writing the download".into(),
                source,
            })?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).map_err(
            |source| BuildError::Io {
                what: "writing the download".into(),
                source,
            },
        )?;
        Ok((file.into_temp_path(), name))
    }
}

/// A `COPY --from` source read out of its image: the tar of it, its checksum (content,
/// names, modes, link targets; not times or owners), what it is.
struct Spooled {
    spool: std::fs::File,
    sum: String,
    name: String,
    original: String,
    is_dir: bool,
}

fn spool_source(
    images: &ImageStore,
    rec: &ImageRecord,
    path: &str,
    work: &std::path::Path,
    kk: &str,
) -> Result<Spooled, BuildError> {
    let io = |what: &'static str| {
        move |source| BuildError::Io {
            what: what.into(),
            source,
        }
    };
    std::fs::create_dir_all(work).map_err(io("making the build's layer directory"))?;
    let sview = view::open(
        images.snapshots(),
        Some(rec),
        work,
        &format!("image {}", short_id(&rec.id.to_string())),
    )
    .map_err(io("opening the source image"))?;
    // The source's own link is followed inside its image, as Docker's.
    let abs = format!("/{}", path.trim_start_matches('/'));
    let (real, found) = copy::lookup(&sview, &abs, true)?;
    if found == Found::Missing {
        return Err(BuildError::Invalid(format!(
            "{kk} failed: stat {path}: file does not exist in the source image"
        )));
    }
    let original = berth_common::pattern::clean(&abs)
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("/")
        .to_string();
    let r = sview
        .resolve(&real)
        .map_err(|e| BuildError::Invalid(format!("{kk} failed: {e}")))?;
    let stat = sview
        .stat_resolved(&r)
        .map_err(|e| BuildError::Invalid(format!("{kk} failed: {e}")))?;
    let mut spool = tempfile::tempfile_in(work).map_err(io("making a spool file"))?;
    sview
        .write_tar(&r, &mut spool)
        .map_err(|e| BuildError::Invalid(format!("{kk} failed: {e}")))?;
    spool.rewind().map_err(io("reading the spool file"))?;
    let sum = copy::checksum_tar(std::io::BufReader::new(&spool))?;
    Ok(Spooled {
        spool,
        sum,
        name: r.name.clone(),
        original,
        is_dir: stat.mode & (1 << 31) != 0,
    })
}

/// A step's cache key: its parent, its history line and author, the configuration it ran with.
fn step_key(st: &StageState, created_by: &str) -> String {
    cache::key(
        st.image.as_ref().map(|i| &i.id),
        &format!("{created_by}\0{}", st.author),
        &Value::Object(st.config.clone()),
    )
}

/// What a step's image says besides its layers.
fn step_child(
    st: &StageState,
    container_config: Map<String, Value>,
    container: String,
    created_by: impl Into<String>,
) -> ChildImage {
    ChildImage {
        config: Value::Object(st.config.clone()),
        container_config: Value::Object(container_config),
        container,
        author: st.author.clone(),
        comment: String::new(),
        created_by: created_by.into(),
    }
}

/// Whether a context file is a tar archive (plain, gzip or zstd) that `ADD` unpacks.
fn is_archive(path: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut r) = crate::image::layer::decompress(f) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &head[257..262] == b"ustar"
}

/// `--chown=user[:group]`: numbers, or names looked up in the image's `/etc/passwd` and
/// `/etc/group` (read inside its root); the group is the user's name when not given.
fn chown_ids(view: &view::View, spec: &str) -> Result<(u64, u64), BuildError> {
    let (user, group) = spec.split_once(':').map_or((spec, spec), |(u, g)| (u, g));
    let root = format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&view.root.root)
    );
    let root = std::path::Path::new(&root);
    let read = |p: &str| {
        crate::container::confined::read_etc(root, p)
            .map_err(|e| BuildError::Invalid(format!("--chown={spec}: {e}")))
    };
    let find = |name: &str, file: &str, what: &str| -> Result<u64, BuildError> {
        if let Ok(n) = name.parse::<u64>() {
            return Ok(n);
        }
        let text = read(file)?;
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((*f.first()?, f.get(2)?.parse::<u64>().ok()?))
            })
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id)
            .ok_or_else(|| {
                BuildError::Invalid(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for {}: no such {}: {name}",
                    if what == "uid" { "user" } else { "group" },
                    if what == "uid" { "user" } else { "group" },
                ))
            })
    };
    Ok((
        find(user, "/etc/passwd", "uid")?,
        find(group, "/etc/group", "gid")?,
    ))
}

/// Quotes a label's key or value as a Dockerfile word.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
