"""`s3dsl compile --explain`: the lowered plan before the passes, what each pass rewrote, the
plan after them, and the forwards read off each plan (the one cost model, `cost.count`)."""

from __future__ import annotations

from s3dsl.compiler.passes import OPT_IN, Plan, plan


def explain_lines(the_plan: Plan) -> list[str]:
    """Plain text (no markup): schedules print as `[at=block_end]`, so a caller that renders
    markup must escape these lines."""
    assert the_plan.unoptimized is not None and the_plan.lowered is not None
    from s3dsl.compiler.particle_schedules import explain_lines as schedule_lines

    out = schedule_lines(the_plan.program.schedules)
    out += ["lowered plan before any pass (what the reference interpreter does); after each "
            "node its tensors, [rows, positions, vocab]: B problems per batch, P prompt "
            "positions and V the vocabulary are known at run time, the rest is static:"]
    out += [f"  {line}" for line in the_plan.unoptimized.lines()]
    first = the_plan.records[0].forwards_before if the_plan.records else the_plan.cost.forwards
    out.append(f"  forwards per problem, read off this plan: {first:,}")
    enabled = [r for r in the_plan.records if r.enabled]
    for record in the_plan.records:
        state = "on" if record.enabled else "off"
        out.append("")
        out.append(f"pass {record.name} ({state}): forwards {record.forwards_before:,} -> "
                   f"{record.forwards_after:,}" + _marginal(the_plan, record.name, enabled))
        for before, after in record.changed:
            if before and not after and not before.startswith("    "):
                out.append(f"  in {before}")
            elif before:
                out.append(f"    - {before.strip()}")
            else:
                out.append(f"    + {after.strip()}")
    out.append("")
    out.append("lowered plan after the passes (what the executor runs):")
    out += [f"  {line}" for line in the_plan.lowered.lines()]
    cost = the_plan.cost
    out.append(f"  forwards per problem, read off this plan: {cost.forwards:,} "
               f"({'exact' if cost.exact else 'an upper bound: data-dependent steps'}"
               + (f"; the costliest of {cost.paths} when= paths" if cost.paths > 1 else "") + ")")
    out += [f"    {stage}: {n:,}" for stage, n in cost.by_stage.items()]
    kinds = sorted({str(n.get("kv")) for n in the_plan.lowered.nodes("forward") if n.get("kv")})
    gen = the_plan.program.decode.gen_length
    cached = f" (block KV cache: {', '.join(kinds)}; approximate)" if kinds else ""
    out.append(f"  answer positions per forward, read off this plan: "
               f"{cost.positions_per_forward:,.1f} of {gen:,}{cached}")
    return out


def _marginal(the_plan: Plan, name: str, enabled: list) -> str:
    """What turning this one pass off would cost: passes whose saving is joint (share-parent and
    forward-reuse both carry S3's score forward into the next denoise) each show it."""
    if name == "batch" or name not in {r.name for r in enabled}:
        return ""
    without = plan(the_plan.program, the_plan.opt_level, (name,),
                   enable=tuple(r.name for r in enabled if r.name in OPT_IN))
    extra = without.cost.forwards - the_plan.cost.forwards
    return f"; without it alone: +{extra:,}" if extra else ""

