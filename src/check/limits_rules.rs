//! ECS quotas a task definition must fit (`taskdef/too-many-containers`):
//! RegisterTaskDefinition refuses more than [`MAX_CONTAINERS`] container
//! definitions, so a task definition that lists every service of a
//! monorepo fails at deploy time, long after a successful build.

use super::finding::{Finding, Severity};
use super::taskdef_rules::Td;

/// ECS's limit of container definitions per task definition ("Containers
/// per task definition", Amazon ECS service quotas; not adjustable).
pub(crate) const MAX_CONTAINERS: usize = 10;

/// Runs the quota rules.
pub(crate) fn rules(td: &Td, out: &mut Vec<Finding>) {
    let count = td.containers().len();
    if count > MAX_CONTAINERS {
        out.push(td.at(
            "containerDefinitions",
            Severity::Error,
            "taskdef/too-many-containers",
            format!(
                "the task definition has {count} containers; ECS allows at most {MAX_CONTAINERS} per task definition, so RegisterTaskDefinition will refuse it"
            ),
            "split the services over several task definitions (one per ECS service) and pin them all from one build with a --taskdef for each",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taskdef(containers: usize) -> String {
        let defs: Vec<String> = (0..containers)
            .map(|i| {
                format!(
                    "    {{\"name\": \"svc{i}\", \"image\": \"210987654321.dkr.ecr.eu-west-1.amazonaws.com/shop-svc{i}:latest\", \"essential\": true}}"
                )
            })
            .collect();
        format!(
            "{{\n  \"family\": \"shop\",\n  \"containerDefinitions\": [\n{}\n  ]\n}}\n",
            defs.join(",\n")
        )
    }

    fn findings(containers: usize) -> Vec<Finding> {
        let mut out = Vec::new();
        let td = super::super::taskdef_rules::parse("taskdef.json", &taskdef(containers), &mut out)
            .expect("JSON");
        let mut found = Vec::new();
        rules(&td, &mut found);
        found
    }

    #[test]
    fn ten_containers_fit_and_eleven_do_not() {
        assert!(findings(1).is_empty());
        assert!(findings(10).is_empty());
        let f = findings(11);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, "taskdef/too-many-containers");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].line, 3, "at the containerDefinitions key");
        assert!(f[0].message.contains("11 containers"), "{}", f[0].message);
        assert!(
            f[0].help.contains("several task definitions"),
            "{}",
            f[0].help
        );
        let f = findings(100);
        assert!(f[0].message.contains("100 containers"), "{}", f[0].message);
    }
}
