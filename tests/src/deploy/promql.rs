//! The Grafana dashboard's PromQL: its queries (panel targets and query variables), Grafana's
//! variables replaced by values Prometheus accepts, and what each query refers to, read from the
//! syntax tree of promql-parser.
use promql_parser::{
    label::Matcher,
    parser::{self, Expr, VectorSelector},
    util::{ExprVisitor, walk_expr},
};
use serde_json::Value;

use super::{DASHBOARD, read};

/// One query of the dashboard: its PromQL, where it is, and its legend (if any).
#[derive(Debug)]
pub struct DashboardQuery {
    pub place: String,
    pub expr: String,
    pub legend: String,
}

pub fn load_dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel's targets' `expr`, and every query variable's `label_values(...)` selector.
pub fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(DashboardQuery {
                place: format!("panel {title:?}"),
                expr: target["expr"].as_str().expect("a target's expr").into(),
                legend: target["legendFormat"].as_str().unwrap_or("").into(),
            });
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("a query variable's query");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(...)"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        queries.push(DashboardQuery {
            place: format!("variable {}", var["name"]),
            // The label must exist: check it as a grouping label.
            expr: format!("count by ({}) ({selector})", label.trim()),
            legend: String::new(),
        });
    }
    queries
}

/// A character of a PromQL identifier (metric or label name) or Grafana variable name.
pub fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The expression with Grafana's variables replaced by values Prometheus accepts: time ranges
/// by durations, the dashboard's own variables (inside label matchers) by `.*`.
pub fn substitute_variables(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m");
    while let Some(at) = out.find('$') {
        let end = out[at + 1..]
            .find(|c: char| !ident_char(c))
            .map_or(out.len(), |n| at + 1 + n);
        out.replace_range(at..end, ".*");
    }
    out
}

/// What one PromQL expression refers to.
#[derive(Debug, Default)]
pub struct Refs {
    /// The metric name of every vector and range selector.
    pub metrics: Vec<String>,
    /// Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_*`.
    pub grouping: Vec<String>,
    /// `(label, operator, value)` of every label matcher; the dashboard's own variables are
    /// `.*` here (see `substitute_variables`).
    pub matchers: Vec<(String, String, String)>,
}

/// What the dashboard expression `expr` (with Grafana variables) refers to. Panics if, with its
/// variables substituted, it is not PromQL.
pub fn refs(expr: &str) -> Refs {
    let query = substitute_variables(expr);
    let tree = parser::parse(&query).unwrap_or_else(|e| panic!("cannot parse {query}: {e}"));
    let mut refs = Refs::default();
    let Ok(_) = walk_expr(&mut refs, &tree);
    refs
}

impl Refs {
    fn selector(&mut self, vs: &VectorSelector) {
        self.metrics.extend(vs.name.clone());
        let matchers = vs.matchers.matchers.iter();
        for m in matchers.chain(vs.matchers.or_matchers.iter().flatten()) {
            let Matcher { op, name, value } = m;
            self.matchers
                .push((name.clone(), op.to_string(), value.clone()));
        }
    }
}

impl ExprVisitor for Refs {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Aggregate(agg) => {
                if let Some(modifier) = &agg.modifier {
                    self.grouping
                        .extend(modifier.labels().labels.iter().cloned());
                }
                // The walk leaves out an aggregation's parameter (`topk(k, ...)`): it may query.
                if let Some(param) = &agg.param {
                    walk_expr(self, param)?;
                }
            }
            Expr::Binary(bin) => {
                if let Some(modifier) = &bin.modifier {
                    if let Some(matching) = &modifier.matching {
                        self.grouping
                            .extend(matching.labels().labels.iter().cloned());
                    }
                    if let Some(extra) = modifier.card.labels() {
                        self.grouping.extend(extra.labels.iter().cloned());
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    }
}
