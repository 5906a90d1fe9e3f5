"""What a run will do, said before it does anything (`drdrill run --dry-run`, `drdrill
validate`): the target, the objectives, the tenants, and each scenario's steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drdrill.core.durations import format_duration

if TYPE_CHECKING:
    from drdrill.drill.runner import RunPlan


def describe_plan(plan: RunPlan) -> dict[str, Any]:
    from pytest_bdd.feature import get_feature

    settings = plan.settings
    features = []
    for loaded in plan.features:
        feature = get_feature(str(loaded.path.parent), loaded.path.name)
        features.append({
            "path": str(loaded.path), "name": feature.name, "tags": sorted(loaded.tags),
            "destructive": loaded.destructive,
            "scenarios": [{"name": s.name, "steps": [f"{st.keyword} {st.name}" for st in s.steps]}
                          for s in feature.scenarios.values()],
        })
    return {
        "drill_id": plan.drill_id, "target": {"name": plan.target_name, **plan.target.describe()},
        "objectives": {"rto_seconds": settings.objectives.rto_seconds, "rpo_seconds": settings.objectives.rpo_seconds,
                       "overridden_by_command_line": sorted(plan.overrides)},
        "tenants": [t.key for t in settings.tenants],
        "data": {"indices_per_tenant": settings.data.indices_per_tenant,
                 "docs_per_index": settings.data.docs_per_index},
        "canary": {"interval_seconds": settings.canary_interval_s, "post_backup_seconds": settings.post_backup_s},
        "dump_encryption": settings.kdf.describe(),
        "report_dir": str(plan.report_dir), "features": features,
    }


def plan_text(plan: dict[str, Any]) -> str:
    obj = plan["objectives"]
    target = plan["target"]
    lines = [f"Plan for drill {plan['drill_id']} (nothing has been started or touched):",
             f"  target      {target['name']}: " + ", ".join(f"{k} {v}" for k, v in target.items() if k != "name"),
             f"  objectives  RTO {format_duration(obj['rto_seconds'])}, RPO {format_duration(obj['rpo_seconds'])}"
             + (f" (from the command line: {', '.join(obj['overridden_by_command_line'])})"
                if obj["overridden_by_command_line"] else "")]
    if target["name"] != "live":
        data = plan["data"]
        lines.append(f"  tenants     {', '.join(plan['tenants'])} (unless a scenario names its own); "
                     f"{data['indices_per_tenant']} indices x {data['docs_per_index']} documents each")
        lines.append(f"  dumps       encrypted with {plan['dump_encryption']}")
    lines.append(f"  report      {plan['report_dir']}")
    for feature in plan["features"]:
        tags = " ".join(f"@{t}" for t in feature["tags"])
        lines.append(f"Feature: {feature['name']}  ({feature['path']}{', ' + tags if tags else ''})")
        for scenario in feature["scenarios"]:
            lines.append(f"  Scenario: {scenario['name']}")
            lines += [f"    {step}" for step in scenario["steps"]]
    return "\n".join(lines) + "\n"
