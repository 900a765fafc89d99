// Parse PromQL with Prometheus's own lezer grammar (@prometheus-io/lezer-promql), offline.
// stdin: a JSON array of expressions. stdout: a JSON array of
// {expr, errors: [offsets of syntax errors], selectors: [{metric, labels: [matcher label names]}]}.
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";

function selector(node, expr) {
  let metric = null;
  const labels = [];
  const walk = node.cursor();
  walk.iterate((inner) => {
    if (inner.name === "Identifier" && metric === null && inner.node.parent.name === "VectorSelector") {
      metric = expr.slice(inner.from, inner.to);
    }
    if (inner.name === "LabelName") labels.push(expr.slice(inner.from, inner.to));
  });
  return { metric, labels };
}

const expressions = JSON.parse(readFileSync(0, "utf8"));
const results = expressions.map((expr) => {
  const errors = [];
  const selectors = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name === "VectorSelector") selectors.push(selector(node.node, expr));
    },
  });
  return { expr, errors, selectors };
});
process.stdout.write(JSON.stringify(results));
