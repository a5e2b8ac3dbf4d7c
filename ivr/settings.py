"""The engine's settings: one TOML file, overridden by the environment.

Every default lives here, once. ``HOTLINE_<SECTION>__<KEY>`` in the
environment overrides the file (``HOTLINE_ARI__PASSWORD=...``), which is how
secrets reach a production engine without being written to disk. A bad file
or value stops the engine at start-up with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from ivr.interpreters.provider import InterpreterSettings
from routing.policy import CrisisPolicy, QueuePolicy, RelayPolicy, Tier

REPO = Path(__file__).resolve().parent.parent

# Passwords shipped in the sandbox and example files. An engine that is not
# a sandbox refuses to start with any of them.
SAMPLE_SECRETS = frozenset({"sandbox-ari-password", "sandbox-redis-password", "sandbox-hmac-key",
                            "change-me", "9876", "1212"})  # the last two: the sandbox's interpreter PINs

# Finite: an infinite ring broke every offer, an infinite wait bounds nothing.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=1, le=65535)]


class SettingsError(Exception):
    """The settings file or environment is unusable; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineSettings(_Section):
    # Distinguishes engine processes sharing one Redis: routing offers are
    # published to the engine holding the call's channel.
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    app: str = "hotline"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080  # 0: any free port (tests)
    log_level: str = "INFO"
    # A sandbox may run with the sample passwords; nothing else may.
    sandbox: bool = False

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()


class ApiSettings(_Section):
    """The HTTP API's defence against token guessing (see ivr/throttle.py)."""

    # Unknown tokens one client (address; IPv6 /64) may present within the
    # window; then every request it makes gets 429 until the window moves on.
    bad_tokens_max: Annotated[int, Field(ge=1)] = 10
    bad_tokens_window_s: Seconds = 300.0
    # Clients remembered at once; the least recently failing is forgotten first.
    bad_tokens_clients_max: Annotated[int, Field(ge=1)] = 10000
    # Reverse proxies (e.g. the TLS proxy on 127.0.0.1) whose X-Forwarded-For
    # names the real client. Without them, everyone behind the proxy would
    # share one counter, and one guesser would lock every advocate out.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return value


class AriSettings(_Section):
    url: str = "http://127.0.0.1:8088"
    username: str = "hotline"
    password: SecretStr
    request_timeout_s: Seconds = 5.0
    reconnect_max_s: Seconds = 5.0
    # REST requests over a WebSocket while it is up (half the
    # engine's CPU per request of HTTP). Needs Asterisk 20.14, 21.9, 22.4 or
    # later; set false for an older one, whose socket would not answer them.
    requests_over_websocket: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        # The URL is logged; the credentials belong in ari.username and ari.password.
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("must not contain a user or password; set ari.username and ari.password")
        return value.rstrip("/")


class RedisSettings(_Section):
    # May carry a password (redis://:pw@host); it is redacted wherever the URL is shown.
    url: str = "redis://127.0.0.1:6390/0"
    password: SecretStr | None = None
    key_prefix: str = "hl:"
    # How often the engine asks Redis whether it is there (and whether it
    # lost its data): the longest a rebuild waits after Redis returns.
    probe_s: Seconds = 1.0
    # Without Redis nobody can be offered a call: waiting callers stay on
    # hold this long (a restart takes seconds), then go to the backup destination.
    outage_hold_s: Seconds = 30.0

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class LinesSettings(_Section):
    """The numbers the carrier delivers, and where calls go when we cannot route."""

    toll_free: Annotated[str, Field(min_length=1)] = "18883737888"
    # Callers on the Spanish line skip the language menu (menu entry "spanish").
    spanish: str | None = None
    # Other lines that enter the menu elsewhere than at its start: DID -> menu
    # entry (dialplans/menu.toml [entries]). The bench's line goes straight to
    # the queue this way.
    entries: dict[str, str] = {}
    # Dialled by the dialplan when the engine is down, and by the engine when
    # it cannot route (Redis down): a human must still answer.
    backup_destination: Annotated[str, Field(min_length=1)] = "PJSIP/1999@carrier"
    backup_ring_s: Annotated[int, Field(gt=0)] = 30

    @model_validator(mode="after")
    def _one_role_per_line(self) -> LinesSettings:
        # A number in two roles takes one of them silently: the toll-free
        # line as the Spanish one would skip every caller's language menu.
        if self.spanish is not None and self.spanish == self.toll_free:
            raise ValueError("spanish: is the toll_free line too")
        for did in self.entries:
            if did in (self.toll_free, self.spanish):
                raise ValueError(f"entries: {did} is the {'toll_free' if did == self.toll_free else 'spanish'} "
                                 "line too")
        return self

    def entry_for(self, did: str) -> str | None:
        """The menu entry a dialled number starts at (None: the whole menu)."""
        if did in self.entries:
            return self.entries[did]
        return "spanish" if self.spanish is not None and did == self.spanish else None

    def kind_of(self, did: str) -> str:
        """A label for the line a call came in on, never the digits of another number."""
        return {self.toll_free: "toll_free", self.spanish: "spanish"}.get(did, "other")


class WidenSettings(_Section):
    """A skill tier: after `after_s` in the queue, the call may go to `to` as well."""

    to: str
    after_s: Seconds
    # Joined when the call is answered in the wider queue (e.g. "spa": the
    # advocate there may not speak Spanish). Skipped without interpreter providers.
    interpreter: str | None = None
    say: str | None = None  # prompt id told to the caller as the call widens


class QueueSettings(_Section):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    skills: frozenset[str]
    # The language(s) a menu choice routes to this queue ("en", "other"...).
    languages: frozenset[str] = frozenset()
    # Nobody waits without a bound: then the backup destination, announced.
    max_wait_s: Seconds = 600.0
    # Answered within this many seconds counts towards the service level.
    service_level_s: Seconds = 30.0
    # Comfort message period while waiting (none if unset), optionally with
    # the caller's position and an estimated wait.
    comfort_every_s: Seconds | None = 60.0
    comfort_position: bool = True
    widen: tuple[WidenSettings, ...] = ()


class RelaySettings(_Section):
    """TRS/711: a relay operator types or voices each side, so everything is slower."""

    # Caller numbers of the relay providers (any format; compared by digits).
    numbers: tuple[str, ...] = ()
    # Lines (DIDs) that only relay calls use.
    dids: tuple[str, ...] = ()
    queue: str = "relay"
    # Menu timeouts of a relay call are multiplied by this.
    menu_timeout_factor: Annotated[float, Field(ge=1, le=10)] = 3.0
    # Relay-skilled advocates only for this long, then anyone in the call's language.
    skilled_only_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    # The advocate's phone rings longer before the call counts as missed.
    advocate_ring_s: Seconds = 40.0


class CrisisSettings(_Section):
    # A crisis call nobody has answered after this long rings the on-call
    # supervisors, then the backup destination.
    escalate_after_s: Seconds = 45.0
    supervisor_ring_s: Seconds = 20.0


_DEFAULT_QUEUES = (
    QueueSettings(name="english", skills=frozenset({"en"}), languages=frozenset({"en", "other"})),
    QueueSettings(name="spanish", skills=frozenset({"es"}), languages=frozenset({"es"}),
                  widen=(WidenSettings(to="english", after_s=60.0, interpreter="spa", say="spanish_overflow"),)),
    QueueSettings(name="relay", skills=frozenset({"relay"}), max_wait_s=900.0),
)


class RoutingSettings(_Section):
    advocate_ring_s: Seconds = 20.0
    wrap_up_s: Seconds = 30.0
    # Per-call records in Redis expire: nothing about a call outlives a day.
    call_ttl_s: Annotated[int, Field(gt=0)] = 86400
    queues: tuple[QueueSettings, ...] = _DEFAULT_QUEUES
    relay: RelaySettings = RelaySettings()
    crisis: CrisisSettings = CrisisSettings()

    @model_validator(mode="after")
    def _queues_cover_languages(self) -> RoutingSettings:
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError(f"queues: duplicate queue names in {names}")
        if not self.queues:
            raise ValueError("queues: at least one queue is needed")
        for i, queue in enumerate(self.queues):
            for j, tier in enumerate(queue.widen):
                if tier.to not in names:
                    raise ValueError(f"queues[{i}].widen[{j}].to: no queue {tier.to!r}; queues are {names}")
                if tier.after_s >= queue.max_wait_s:
                    raise ValueError(f"queues[{i}].widen[{j}].after_s: must be below the queue's "
                                     f"max_wait_s ({queue.max_wait_s:g})")
        if self.relay.queue not in names:
            raise ValueError(f"relay.queue: no queue {self.relay.queue!r}; queues are {names}")
        return self

    def unreachable_steps(self) -> list[str]:
        """Steps of a call's plan that its queue's maximum wait comes before:
        allowed (the backup destination is a human too), but likely a
        mistake, so the engine says so at start-up."""
        notes = [f"routing.crisis.escalate_after_s ({self.crisis.escalate_after_s:g}) is not below "
                 f"queue {q.name}'s max_wait_s ({q.max_wait_s:g}): its crisis calls go to the backup "
                 "destination without ringing a supervisor"
                 for q in self.queues if self.crisis.escalate_after_s >= q.max_wait_s]
        relay_wait = next(q.max_wait_s for q in self.queues if q.name == self.relay.queue)
        if self.relay.skilled_only_s >= relay_wait:
            notes.append(f"routing.relay.skilled_only_s ({self.relay.skilled_only_s:g}) is not below the relay "
                         f"queue's max_wait_s ({relay_wait:g}): relay calls never reach the language queues")
        return notes

    def queue_for_language(self, language: str) -> str:
        for queue in self.queues:
            if language in queue.languages:
                return queue.name
        return self.queues[0].name

    def queue_policies(self) -> dict[str, QueuePolicy]:
        return {q.name: QueuePolicy(
            name=q.name, max_wait_s=q.max_wait_s, service_level_s=q.service_level_s,
            comfort_every_s=q.comfort_every_s, comfort_position=q.comfort_position,
            widen=tuple(Tier(w.to, w.after_s, w.interpreter, w.say) for w in q.widen)) for q in self.queues}

    def relay_policy(self) -> RelayPolicy:
        return RelayPolicy(self.relay.queue, self.relay.skilled_only_s, self.relay.advocate_ring_s)

    def crisis_policy(self) -> CrisisPolicy:
        return CrisisPolicy(self.crisis.escalate_after_s)


class MonitoringSettings(_Section):
    """Supervisors listening to, whispering to and barging into calls."""

    # How long the supervisor's phone rings before the request lapses.
    ring_s: Seconds = 30.0
    # How long the API waits for the call to take a request (its mailbox may
    # be busy with a slow ARI request) before answering 503.
    request_timeout_s: Seconds = 5.0
    # The audit trail in Redis: the newest entries kept, and for how long
    # after the last action (the log lines are the long-term record).
    audit_max_entries: Annotated[int, Field(ge=1)] = 10000
    audit_retention_days: Annotated[int, Field(ge=1)] = 90


class MenuSettings(_Section):
    path: Path = REPO / "dialplans" / "menu.toml"
    prompts_dir: Path = REPO / "dialplans" / "prompts"


class PrivacySettings(_Section):
    # Keys the HMAC that stands in for a caller's number wherever one call
    # must be told from another (repeat callers); the number itself is never stored.
    hmac_key: SecretStr


class AdvocateSettings(_Section):
    """The roster. Tokens are stored only as their SHA-256."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: str
    endpoint: Annotated[str, Field(min_length=1)]
    skills: frozenset[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]] = frozenset({"en"})
    roles: frozenset[Literal["advocate", "supervisor"]] = frozenset({"advocate"})
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class WallboardSettings(_Section):
    # "Today" on the wallboard starts at midnight here, for every engine
    # sharing the Redis (an IANA zone name).
    timezone: str = "America/New_York"
    # How often an open wallboard's feed reads Redis; a change reaches the
    # page within this, plus the browser's drawing.
    refresh_s: Annotated[float, Field(gt=0, le=5)] = 0.5

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name such as 'America/New_York' or 'UTC'") from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SandboxSettings(_Section):
    root: Path = Path("/var/cache/hotline-sandbox/root")
    state_dir: Path = Path("/var/cache/hotline-sandbox/state")
    sip_host: str = "127.0.0.1"
    sip_port: Port = 5060
    # The simulated PSTN on a loopback address of its own: Asterisk binds each
    # side's RTP to its SIP transport's address, so the two sides do not share
    # the RTP range. One range of 1,000 ports holds 500 RTP sessions; 200
    # concurrent callers ringing 200 advocates need 400 on each side.
    pstn_host: str = "127.0.0.2"
    pstn_port: Port = 5070
    rtp_start: Port = 20000
    rtp_end: Port = 20999
    phones_app: str = "phones"
    phones_http_port: Port = 8089
    redis_port: Port = 6390


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    engine: EngineSettings = EngineSettings()
    api: ApiSettings = ApiSettings()
    ari: AriSettings
    redis: RedisSettings = RedisSettings()
    lines: LinesSettings = LinesSettings()
    routing: RoutingSettings = RoutingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    menu: MenuSettings = MenuSettings()
    privacy: PrivacySettings
    advocates: tuple[AdvocateSettings, ...] = ()
    interpreters: InterpreterSettings = InterpreterSettings()
    wallboard: WallboardSettings = WallboardSettings()
    sandbox: SandboxSettings = SandboxSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values).
        return env_settings, init_settings

    @model_validator(mode="after")
    def _no_sample_secrets_in_production(self) -> Settings:
        if self.engine.sandbox:
            return self
        secrets = {"ari.password": self.ari.password, "privacy.hmac_key": self.privacy.hmac_key,
                   "redis.password": self.redis.password}
        for i, provider in enumerate(self.interpreters.providers):
            secrets[f"interpreters.providers[{i}].pin"] = provider.pin
        for key, secret in secrets.items():
            if secret is not None and secret.get_secret_value() in SAMPLE_SECRETS:
                raise ValueError(f"{key}: is a sample password; set a real one "
                                 "(or engine.sandbox = true for the local sandbox)")
        return self

    @model_validator(mode="after")
    def _unique_advocate_ids(self) -> Settings:
        # Checked in the sandbox too: two entries would share one Redis record.
        ids = [a.id for a in self.advocates]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"advocates: duplicate advocate ids {duplicates}")
        # One token, one person: the API could not tell who acts.
        seen: dict[str, int] = {}
        for i, advocate in enumerate(self.advocates):
            if advocate.token_sha256 in seen:
                raise ValueError(f"advocates[{i}].token_sha256: the same token as advocates[{seen[advocate.token_sha256]}]")
            seen[advocate.token_sha256] = i
        return self

    @model_validator(mode="after")
    def _relay_lines_are_not_the_main_ones(self) -> Settings:
        for did in self.routing.relay.dids:
            if did in (self.lines.toll_free, self.lines.spanish):
                raise ValueError(f"routing.relay.dids: {did} is a main line; every call on it would be a relay call")
        return self


def load_settings(path: Path | str, **overrides: Any) -> Settings:
    """Read ``path`` and the environment; raise SettingsError naming the bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"settings file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path}: cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: not valid TOML: {exc}") from None
    _merge(data, overrides)
    _check_environment_sections(os.environ)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise SettingsError(f"settings file {path}:\n{_describe(exc)}") from None
    except PydanticSettingsError as exc:
        # Its cause says where the JSON broke, never the value (it may be a secret).
        raise SettingsError(f"environment: {exc}: a HOTLINE_<SECTION>__<KEY> variable holding a list or "
                            f"a table must be JSON ({exc.__cause__})") from None


# HOTLINE_ variables that are not settings: read by the command line and the tests.
NOT_SETTINGS = frozenset({"HOTLINE_CONFIG", "HOTLINE_TOKEN", "HOTLINE_TEST_ARTIFACTS",
                          "HOTLINE_UPDATE_SCREENSHOTS"})


def _check_environment_sections(environ: Mapping[str, str]) -> None:
    """Refuse a HOTLINE_ variable that names no section.

    pydantic-settings reads only the variables of sections it knows, so a
    misspelt section (HOTLINE_REDS__PASSWORD), or one underscore where two
    belong (HOTLINE_ENGINE_SANDBOX), would leave the file's value in force
    unnoticed. A misspelt key within a known section is refused by the
    section's own model. Only the name is shown: the value may be a secret.
    """
    prefix = Settings.model_config["env_prefix"]
    sections = {name.upper() for name in Settings.model_fields}
    for name in sorted(environ):
        # Upper-cased as pydantic-settings matches them: regardless of case.
        upper = name.upper()
        if not upper.startswith(prefix) or upper in NOT_SETTINGS:
            continue
        rest = upper[len(prefix):]
        section, nested, _ = rest.partition("__")
        if section in sections:
            continue
        if nested:
            raise SettingsError(f"environment: {name}: no settings section {section.lower()!r} "
                                f"(sections: {', '.join(sorted(s.lower() for s in sections))})")
        near = next((s for s in sorted(sections) if rest.startswith(s + "_")), None)
        if near is not None:
            raise SettingsError(f"environment: {name}: a key of section {near.lower()!r} takes two "
                                f"underscores: {prefix}{near}__{rest[len(near) + 1:]}")


def _merge(into: dict[str, Any], updates: dict[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)
