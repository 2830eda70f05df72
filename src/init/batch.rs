//! `init --batch N`: a buildspec.yml whose `batch: build-graph` fans the
//! build out over N CodeBuild hosts. Builds `shard_1` … `shard_N` run
//! `stackbake build` with `STACKBAKE_SHARD: "K/N"` (each builds and pushes
//! its share of the targets that changed; `ignore-failure: true`, so a
//! failed shard does not stop the rest); `assemble` `depend-on`s all of
//! them and runs a plain `stackbake build`: every target a shard pushed is
//! reused by fingerprint, whatever a shard left is built there, and its
//! artifact is the pipeline's. Every build writes into `stackbake-out`,
//! the artifact's base directory: a shard leaves only its report there,
//! never a task definition.

/// The largest N `init --batch` writes.
pub(crate) const MAX_SHARDS: u32 = 100;

/// The identifier of the build that writes the artifact.
pub(crate) const ASSEMBLE: &str = "assemble";

/// Where every build of the batch writes (the artifact's base directory).
pub(crate) const OUT_DIR: &str = "stackbake-out";

/// The batch buildspec for `n` shards; `taskdef` and `appspec` are the
/// file names the artifact carries.
/// `settings`: further `env.variables` lines (see `super::build_settings`).
pub(crate) fn buildspec_yaml(taskdef: &str, appspec: &str, n: u32, settings: &str) -> String {
    let mut graph = String::new();
    for k in 1..=n {
        graph.push_str(&format!(
            "    - identifier: shard_{k}\n\
             \x20     ignore-failure: true\n\
             \x20     env:\n\
             \x20       privileged-mode: true\n\
             \x20       variables:\n\
             \x20         STACKBAKE_SHARD: \"{k}/{n}\"\n"
        ));
    }
    graph.push_str(&format!(
        "    - identifier: {ASSEMBLE}\n\
         \x20     env:\n\
         \x20       privileged-mode: true\n\
         \x20     depend-on:\n"
    ));
    for k in 1..=n {
        graph.push_str(&format!("        - shard_{k}\n"));
    }
    format!(
        "# CodeBuild batch buildspec, written by `stackbake init --batch {n}`. The\n\
         # CodeBuild project needs privileged mode ON (stackbake drives the image's\n\
         # Docker daemon) and batch builds enabled with a batch service role. In\n\
         # CodePipeline, set BatchEnabled on the CodeBuild action (CombineArtifacts\n\
         # off) and name its output artifact `{ASSEMBLE}`: the artifact to deploy is\n\
         # that build's.\n\
         #\n\
         # shard_1..shard_{n} build their share of the targets that changed, at once,\n\
         # on their own hosts, and push them tagged with the commit and their\n\
         # fingerprint. `{ASSEMBLE}` runs when they are done: it reuses every\n\
         # target a shard pushed, builds whatever a failed shard left, moves\n\
         # `latest` and writes the artifact.\n\
         version: 0.2\n\
         \n\
         batch:\n\
         \x20 fast-fail: false\n\
         \x20 build-graph:\n\
         {graph}\
         \n\
         {env_and_install}\
         \x20 build:\n\
         \x20   commands:\n\
         \x20     # A shard (STACKBAKE_SHARD set) writes only its report into {OUT_DIR}.\n\
         \x20     - ./stackbake build --out {OUT_DIR}\n\
         \n\
         artifacts:\n\
         \x20 base-directory: {OUT_DIR}\n\
         \x20 files:\n\
         \x20   - {taskdef}\n\
         \x20   - {appspec}\n\
         \x20   - imageDetail.json\n\
         \x20   - imagedefinitions.json\n\
         \x20   - stackbake-report.json\n",
        env_and_install = super::files::env_and_install(settings),
    )
}
