//! The admin console: users (search, paging, roles, disable/enable, end sessions) and the audit log.

use api::{Role, wire::AdminUser};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::use_api,
    components::{denied::AccessDenied, pager::Pager},
    pages::profile::pretty_time,
};

#[component]
pub fn AdminPage() -> impl IntoView {
    // Bumped by every change, so the audit log shows it at once.
    let changed = RwSignal::new(0u32);
    view! {
        <Users reload=changed/>
        <Audit reload=changed/>
    }
}

#[component]
fn Users(reload: RwSignal<u32>) -> impl IntoView {
    let api = use_api();
    let query = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    let page = RwSignal::new(1u32);
    let notice = RwSignal::new(None::<String>);
    let users = LocalResource::new({
        move || {
            let (q, p) = (search.get(), page.get());
            reload.track();
            async move { api.users(&q, p).await }
        }
    });
    let on_search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        page.set(1);
        search.set(query.get_untracked());
    };
    let act = move |id: i64, action: &'static str| {
        spawn_local(async move {
            let result = api.admin_action(id, action).await;
            notice.set(Some(result.unwrap_or_else(|e| e.message)));
            reload.update(|n| *n += 1);
        });
    };
    let total_pages = move || {
        users
            .get()
            .and_then(|r| r.ok())
            .map_or(1, |l| ((l.total.max(1) + 9) / 10) as u32)
    };

    view! {
        <section class="card" id="admin-users">
            <h1>"Users"</h1>
            <form class="search" on:submit=on_search role="search">
                <label for="user-search" class="visually-hidden">"Search users"</label>
                <input id="user-search" type="search" placeholder="Search by username or email"
                    prop:value=move || query.get() on:input=move |ev| query.set(event_target_value(&ev))/>
                <button type="submit">"Search"</button>
            </form>
            <p class="notice" role="status" id="admin-notice">{move || notice.get()}</p>
            {move || match users.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) if e.status == 403 => view! { <AccessDenied/> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e.message}</p> }.into_any(),
                Some(Ok(list)) if list.users.is_empty() => view! { <p class="muted">"No users match."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap">
                        <table>
                            <thead><tr><th>"User"</th><th>"Roles"</th><th>"Status"</th><th>"Actions"</th></tr></thead>
                            <tbody>
                                {list.users.into_iter().map(|user| view! { <UserRow user=user act=act notice=notice reload=reload/> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            <Pager page=page last=Signal::derive(total_pages)/>
        </section>
    }
}

#[component]
fn UserRow(
    user: AdminUser,
    act: impl Fn(i64, &'static str) + Clone + 'static,
    notice: RwSignal<Option<String>>,
    reload: RwSignal<u32>,
) -> impl IntoView {
    let api = use_api();
    let id = user.id;
    let chosen: Vec<RwSignal<bool>> = Role::ALL
        .iter()
        .map(|role| RwSignal::new(user.roles.iter().any(|r| r == role.authority())))
        .collect();
    let save = {
        let chosen = chosen.clone();
        move |_| {
            let roles: Vec<String> = Role::ALL
                .iter()
                .zip(&chosen)
                .filter(|(_, on)| on.get_untracked())
                .map(|(role, _)| role.as_str().to_owned())
                .collect();
            spawn_local(async move {
                match api.set_roles(id, roles).await {
                    Ok(user) => notice.set(Some(format!("Roles of {} saved.", user.username))),
                    Err(e) => notice.set(Some(e.message)),
                }
                reload.update(|n| *n += 1);
            });
        }
    };
    let disabled = user.disabled;
    let (act_toggle, act_sessions) = (act.clone(), act);
    view! {
        <tr id=format!("user-{id}") data-username=user.username.clone()>
            <td><strong>{user.username.clone()}</strong><br/><span class="muted">{user.email.clone()}</span></td>
            <td>
                <fieldset class="roles">
                    <legend class="visually-hidden">{format!("Roles of {}", user.username)}</legend>
                    {Role::ALL.iter().zip(chosen).map(|(role, on)| {
                        let input_id = format!("role-{id}-{}", role.as_str());
                        let label_for = input_id.clone();
                        view! {
                            <label for=label_for>
                                <input type="checkbox" id=input_id prop:checked=move || on.get()
                                    on:change=move |ev| on.set(event_target_checked(&ev))/>
                                {role.as_str()}
                            </label>
                        }
                    }).collect_view()}
                    <button type="button" class="small save-roles" on:click=save>"Save roles"</button>
                </fieldset>
            </td>
            <td>{if disabled { view! { <span class="badge danger">"Disabled"</span> } } else { view! { <span class="badge">"Active"</span> } }}</td>
            <td class="actions">
                <button type="button" class="small secondary" on:click=move |_| act_toggle(id, if disabled { "enable" } else { "disable" })>
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
                <button type="button" class="small secondary end-sessions" on:click=move |_| act_sessions(id, "sessions")>"End sessions"</button>
            </td>
        </tr>
    }
}

#[component]
fn Audit(reload: RwSignal<u32>) -> impl IntoView {
    let api = use_api();
    let kind = RwSignal::new(String::new());
    let page = RwSignal::new(1u32);
    let events = LocalResource::new(move || {
        let (k, p) = (kind.get(), page.get());
        reload.track();
        async move { api.audit(&k, p).await }
    });
    let kinds = [
        "",
        "signup",
        "signin_ok",
        "signin_failed",
        "refresh_reuse_detected",
        "logout",
        "session_revoked",
        "password_changed",
        "roles_changed",
        "user_disabled",
        "user_enabled",
        "user_deleted",
    ];
    let last_page = move || {
        events
            .get()
            .and_then(|r| r.ok())
            .map_or(1, |p| ((p.total.max(1) + 14) / 15) as u32)
    };
    view! {
        <section class="card" id="audit">
            <h2>"Audit log"</h2>
            <label for="audit-kind">"Event kind"</label>
            <select id="audit-kind" on:change=move |ev| { page.set(1); kind.set(event_target_value(&ev)); }>
                {kinds.into_iter().map(|k| view! { <option value=k>{if k.is_empty() { "All events" } else { k }}</option> }).collect_view()}
            </select>
            {move || match events.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) if e.status == 403 => view! { <AccessDenied/> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e.message}</p> }.into_any(),
                Some(Ok(p)) if p.events.is_empty() => view! { <p class="muted">"No events."</p> }.into_any(),
                Some(Ok(p)) => view! {
                    <div class="table-wrap">
                        <table>
                            <thead><tr><th>"When"</th><th>"Event"</th><th>"User"</th><th>"By"</th><th>"IP"</th><th>"Detail"</th></tr></thead>
                            <tbody>
                                {p.events.into_iter().map(|e| view! {
                                    <tr>
                                        <td>{pretty_time(&e.at)}</td>
                                        <td><code>{e.kind}</code></td>
                                        <td>{e.user_id.map(|u| u.to_string())}</td>
                                        <td>{e.actor_id.map(|u| u.to_string())}</td>
                                        <td>{e.ip}</td>
                                        <td>{e.detail}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            <Pager page=page last=Signal::derive(last_page)/>
        </section>
    }
}
