//! Struct member offsets read from the running kernel's BTF, so no layout is hard-coded.
use anyhow::{Context, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use tracer_common::KernelOffsets;

/// Where a member lives and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub offset: u32,
    pub size: usize,
}

fn struct_type(btf: &Btf, name: &str) -> Result<btf_rs::Struct> {
    btf.resolve_types_by_name(name)
        .with_context(|| format!("struct {name} not in kernel BTF"))?
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })
        .ok_or_else(|| anyhow!("struct {name} not in kernel BTF"))
}

/// Size in bytes of a member's type, following typedefs and qualifiers.
fn type_size(btf: &Btf, mut t: Type) -> Result<usize> {
    for _ in 0..16 {
        t = match t {
            Type::Int(i) => return Ok(i.size()),
            Type::Enum(e) => return Ok(e.size()),
            Type::Struct(s) | Type::Union(s) => return Ok(s.size()),
            Type::Ptr(_) => return Ok(8),
            Type::Typedef(_) | Type::Volatile(_) | Type::Const(_) | Type::Restrict(_) => {
                let inner = t.as_btf_type().context("qualifier without a type")?;
                btf.resolve_chained_type(inner)?
            }
            other => bail!("cannot size a BTF {}", other.name()),
        };
    }
    bail!("BTF type chain too deep")
}

/// Finds `field` in `members`, looking through anonymous unions and structs.
fn find(btf: &Btf, members: &[btf_rs::Member], field: &str) -> Result<Option<Member>> {
    for m in members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let base = m.bit_offset() / 8;
        if name == field {
            let size = type_size(btf, btf.resolve_chained_type(m)?)?;
            return Ok(Some(Member { offset: base, size }));
        }
        if name.is_empty()
            && let Type::Struct(inner) | Type::Union(inner) = btf.resolve_chained_type(m)?
            && let Some(found) = find(btf, &inner.members, field)?
        {
            return Ok(Some(Member {
                offset: base + found.offset,
                size: found.size,
            }));
        }
    }
    Ok(None)
}

/// `struct_name.field`, e.g. `member(btf, "sock_common", "skc_dport")`.
pub fn member(btf: &Btf, struct_name: &str, field: &str) -> Result<Member> {
    let s = struct_type(btf, struct_name)?;
    find(btf, &s.members, field)?.ok_or_else(|| anyhow!("{struct_name}.{field} not in kernel BTF"))
}

/// Every offset the eBPF programs need.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets> {
    let at = |s: &str, f: &str| member(btf, s, f).map(|m| m.offset);
    let protocol = member(btf, "sock", "sk_protocol")?;
    Ok(KernelOffsets {
        skc_daddr: at("sock_common", "skc_daddr")?,
        skc_rcv_saddr: at("sock_common", "skc_rcv_saddr")?,
        skc_dport: at("sock_common", "skc_dport")?,
        skc_num: at("sock_common", "skc_num")?,
        skc_family: at("sock_common", "skc_family")?,
        skc_state: at("sock_common", "skc_state")?,
        skc_v6_daddr: at("sock_common", "skc_v6_daddr")?,
        skc_v6_rcv_saddr: at("sock_common", "skc_v6_rcv_saddr")?,
        skc_net: at("sock_common", "skc_net")?,
        net_ns_inum: at("net", "ns")? + at("ns_common", "inum")?,
        sk_protocol: protocol.offset,
        sk_protocol_size: protocol.size as u32,
        inet_sport: at("inet_sock", "inet_sport")?,
        tw_substate: at("inet_timewait_sock", "tw_substate")?,
        tw_sport: at("inet_timewait_sock", "tw_sport")?,
        tw_timer: at("inet_timewait_sock", "tw_timer")?,
        timer_function: at("timer_list", "function")?,
        timer_pprev: at("timer_list", "entry")? + at("hlist_node", "pprev")?,
        skc_cookie: at("sock_common", "skc_cookie")?,
        rsk_timer: at("request_sock", "rsk_timer")?,
        num_retrans: at("request_sock", "num_retrans")?,
        skc_nulls_pprev: at("sock_common", "skc_nulls_node")? + at("hlist_nulls_node", "pprev")?,
        snt_synack: at("tcp_request_sock", "snt_synack")?,
        fastopen_rsk: at("tcp_sock", "fastopen_rsk")?,
    })
}

/// Whether the kernel has a function of that name (a BTF FUNC: it can be hooked by fentry).
pub fn has_function(btf: &Btf, name: &str) -> bool {
    btf.resolve_types_by_name(name)
        .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
}
