//! The admin console: users (create, search, paging, roles, disable/enable, passwords, address
//! verification, sessions) and the audit log.

use api::{
    Email, Password, Role, Username,
    wire::{AdminUser, CreateUserRequest},
};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::use_api,
    components::{denied::AccessDenied, field::Field, pager::Pager},
    pages::profile::pretty_time,
};

#[component]
pub fn AdminPage() -> impl IntoView {
    // Bumped by every change, so the audit log shows it at once.
    let changed = RwSignal::new(0u32);
    view! {
        <Users reload=changed/>
        <CreateUser reload=changed/>
        <Audit reload=changed/>
    }
}

/// A new account: with a password, or with a mail to its owner to choose one.
#[component]
fn CreateUser(reload: RwSignal<u32>) -> impl IntoView {
    let api = use_api();
    let username = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let verified = RwSignal::new(false);
    let roles: Vec<RwSignal<bool>> = Role::ALL
        .iter()
        .map(|role| RwSignal::new(*role == Role::User))
        .collect();
    let outcome = RwSignal::new(None::<(bool, String)>);
    let pending = RwSignal::new(false);
    let live = |value: RwSignal<String>, parse: fn(&str) -> Option<String>| {
        Signal::derive(move || {
            let text = value.get();
            (!text.is_empty()).then(|| parse(&text)).flatten()
        })
    };
    let username_error = live(username, |v| Username::parse(v).err().map(|e| e.message));
    let email_error = live(email, |v| Email::parse(v).err().map(|e| e.message));
    let password_error = live(password, |v| Password::parse(v).err().map(|e| e.message));
    let submit = {
        let roles = roles.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if pending.get_untracked()
                || username_error.get_untracked().is_some()
                || email_error.get_untracked().is_some()
                || password_error.get_untracked().is_some()
            {
                return;
            }
            let typed = password.get_untracked();
            let request = CreateUserRequest {
                username: username.get_untracked(),
                email: email.get_untracked(),
                roles: Role::ALL
                    .iter()
                    .zip(&roles)
                    .filter(|(_, on)| on.get_untracked())
                    .map(|(role, _)| role.as_str().to_owned())
                    .collect(),
                send_set_password_mail: Some(typed.is_empty()),
                password: (!typed.is_empty()).then_some(typed),
                email_verified: verified.get_untracked(),
            };
            pending.set(true);
            spawn_local(async move {
                match api.create_user(&request).await {
                    Ok(user) => {
                        let how = if request.password.is_some() {
                            "with the password given"
                        } else {
                            "a link to choose a password was mailed"
                        };
                        outcome.set(Some((true, format!("Created {} ({how}).", user.username))));
                        username.set(String::new());
                        email.set(String::new());
                        password.set(String::new());
                        reload.update(|n| *n += 1);
                    }
                    Err(e) => outcome.set(Some((false, e.message))),
                }
                pending.set(false);
            });
        }
    };
    view! {
        <section class="card" id="create-user">
            <h2>"Create a user"</h2>
            <form on:submit=submit novalidate>
                <Field id="new-username" label="Username" autocomplete="off" value=username error=username_error/>
                <Field id="new-user-email" label="Email" kind="email" autocomplete="off" value=email error=email_error/>
                <Field id="new-user-password" label="Password (leave empty to mail a link to choose one)" kind="password" autocomplete="new-password" value=password error=password_error/>
                <fieldset class="roles">
                    <legend>"Roles"</legend>
                    {Role::ALL.iter().zip(roles).map(|(role, on)| {
                        let input_id = format!("new-role-{}", role.as_str());
                        let label_for = input_id.clone();
                        view! {
                            <label for=label_for>
                                <input type="checkbox" id=input_id prop:checked=move || on.get()
                                    on:change=move |ev| on.set(event_target_checked(&ev))/>
                                {role.as_str()}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
                <label for="new-user-verified">
                    <input type="checkbox" id="new-user-verified" prop:checked=move || verified.get()
                        on:change=move |ev| verified.set(event_target_checked(&ev))/>
                    " The address is known to be theirs"
                </label>
                <p role="status" id="create-user-status"
                    class=move || if outcome.get().is_some_and(|(ok, _)| ok) { "success" } else { "error" }>
                    {move || outcome.get().map(|(_, m)| m)}
                </p>
                <button type="submit" id="create-user-submit" disabled=move || pending.get()>"Create user"</button>
            </form>
        </section>
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
                            <thead><tr><th>"User"</th><th>"Roles"</th><th>"Status"</th><th>"Last sign-in"</th><th>"Actions"</th></tr></thead>
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
    let verified = user.email_verified;
    let mfa = user.mfa;
    let factors = if user.factors.is_empty() {
        "2-step".to_owned()
    } else {
        format!("2-step: {}", user.factors.join(", "))
    };
    let act_mfa = act.clone();
    let act_toggle = act.clone();
    let act_sessions = act.clone();
    let act_reset = act.clone();
    let act_verify = act;
    let show_sessions = RwSignal::new(false);
    let show_password = RwSignal::new(false);
    let new_password = RwSignal::new(String::new());
    let set_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match api
                .set_user_password(id, &new_password.get_untracked())
                .await
            {
                Ok(message) => {
                    new_password.set(String::new());
                    show_password.set(false);
                    notice.set(Some(message));
                }
                Err(e) => notice.set(Some(e.message)),
            }
            reload.update(|n| *n += 1);
        });
    };
    let sessions = LocalResource::new(move || {
        let shown = show_sessions.get();
        async move {
            if shown {
                Some(api.user_sessions(id).await)
            } else {
                None
            }
        }
    });
    let last_signin = user
        .last_signin_at
        .as_deref()
        .map_or_else(|| "never".to_owned(), pretty_time);
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
            <td>
                {if disabled { view! { <span class="badge danger">"Disabled"</span> } } else { view! { <span class="badge">"Active"</span> } }}
                {mfa.then(|| view! { <span class="badge mfa-status">{factors}</span> })}
                {if verified {
                    view! { <span class="badge email-status">"email verified"</span> }.into_any()
                } else {
                    view! { <span class="badge warning email-status">"email not verified"</span> }.into_any()
                }}
            </td>
            <td class="last-signin">{last_signin}</td>
            <td class="actions">
                <button type="button" class="small secondary" on:click=move |_| act_toggle(id, if disabled { "enable" } else { "disable" })>
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
                <button type="button" class="small secondary end-sessions" on:click=move |_| act_sessions(id, "sessions")>"End sessions"</button>
                <button type="button" class="small secondary show-sessions" on:click=move |_| show_sessions.update(|s| *s = !*s)>
                    {move || if show_sessions.get() { "Hide sessions" } else { "Sessions" }}
                </button>
                <button type="button" class="small secondary send-reset" on:click=move |_| act_reset(id, "password-reset")>"Mail a reset link"</button>
                <button type="button" class="small secondary set-password" on:click=move |_| show_password.update(|s| *s = !*s)>"Set password"</button>
                {mfa.then(|| view! {
                    <button type="button" class="small secondary reset-mfa" on:click=move |_| act_mfa(id, "mfa")>"Reset 2-step"</button>
                })}
                {(!verified).then(|| view! {
                    <button type="button" class="small secondary mark-verified" on:click=move |_| act_verify(id, "verify-email")>"Mark email verified"</button>
                })}
                <Show when=move || show_password.get()>
                    <form class="search" on:submit=set_password novalidate>
                        <label for=format!("password-{id}") class="visually-hidden">"New password"</label>
                        <input id=format!("password-{id}") type="password" autocomplete="new-password" placeholder="New password"
                            prop:value=move || new_password.get() on:input=move |ev| new_password.set(event_target_value(&ev))/>
                        <button type="submit" class="small">"Save"</button>
                    </form>
                </Show>
                {move || sessions.get().flatten().map(|result| match result {
                    Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted user-sessions">"No active sessions."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="user-sessions">
                            {list.into_iter().map(|s| view! {
                                <li>{format!("{} · {} · last used {}", s.user_agent.unwrap_or_else(|| "unknown device".into()), s.ip.unwrap_or_default(), pretty_time(&s.last_used_at))}</li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
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
        "password_reset_requested",
        "password_reset",
        "password_set_by_admin",
        "email_verified",
        "email_change_requested",
        "email_changed",
        "email_change_reported",
        "mail_failed",
        "mfa_enrolled",
        "mfa_removed",
        "mfa_failed",
        "mfa_reset",
        "recovery_codes_regenerated",
        "recovery_code_used",
        "client_added",
        "client_removed",
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
