"""What the local node is assembled from: Maven coordinates, pinned per OpenSearch version.

The Maven distribution (``integ-test-zip``) carries only the ``transport-*`` modules; the
modules that k-NN and our features need are published as plain jars and are assembled into
``modules/<name>`` with a generated plugin descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str
    packaging: str = "jar"

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.{self.packaging}"


# sha256 of every pinned file, recorded from Maven Central. Some artifacts (neural-search)
# are published without Maven checksums, so we verify against these pins ourselves.
SHA256: dict[str, str] = {
    "analysis-common-2.19.1.jar": "13fdc1071af42946b13153a62491a5e9b0ad214d44f7c8153d3afef60f558821",
    "antlr4-runtime-4.13.1.jar": "54665d2838cc66458343468efc539e454fc95b46a8a04b13c6ac43fc9be63505",
    "asm-9.7.jar": "adf46d5e34940bdf148ecdd26a9ee8eea94496a72034ff7141066b3eea5c4e9d",
    "asm-analysis-9.7.jar": "7bc6bcbc21379948a0c8c467fb0f864206e5b818f6bc0b546872f5c9f941556f",
    "asm-commons-9.7.jar": "389bc247958e049fc9a0408d398c92c6d370c18035120395d4cba1d9d9304b7a",
    "asm-tree-9.7.jar": "62f4b3bc436045c1acb5c3ba2d8ec556ec3369093d7f5d06c747eb04b56d52b1",
    "asm-util-9.7.jar": "37a6414d36641973f1af104937c95d6d921b2ddb4d612c66c5a9f2b13fc14211",
    "compiler-0.9.14.jar": "99a7e7855609135006f078e6de7ee69daad9c42f98e679d56f80653cb17526b9",
    "lang-mustache-client-2.19.1.jar": "3d688c8d05e517ddad94e439c61183b642aa1784daf7a4d76964d518f6c17135",
    "lang-painless-2.19.1.jar": "3cf5e02efa40ff5b88e74e1ab66a0bc462de3509fab4a6a4ffe90b8d13777a9a",
    "mapper-extras-client-2.19.1.jar": "93e85f305ddc3070fea5b83cc8d962bdcd30df20638352b02cf57276cc2bc5d5",
    "neural-search-2.19.1.0.zip": "b17ca1d774692902c58cbae102bf463970740c31d81446866e8eabd336e285aa",
    "opensearch-2.19.1.zip": "af7152d8b7f6f1cee09d47276b32b70479fe6dd8cdbb61213f84eb7f8098b261",
    "opensearch-knn-2.19.1.0.zip": "eab8c9818865bc035212eab5068cdacae164baa09d4c152f49b736d6f6b0e85c",
    "opensearch-security-2.19.1.0.zip": "94a04f12ac6033902209fac1e4e512618d45beee604bbf0e42c3ed79c55220cf",
    "opensearch-scripting-painless-spi-2.19.1.jar": "c2598797a5f6f897ce7e8d05f593ff96de3fbc56c52f299d63cddcae41556dda",
}


@dataclass(frozen=True)
class ModuleSpec:
    """A bundled module assembled from Maven jars."""

    name: str
    classname: str
    description: str
    jars: tuple[Artifact, ...]
    extended_plugins: tuple[str, ...] = ()
    security_policy: str = ""


@dataclass(frozen=True)
class NodeBill:
    """Everything a node of one version is built from."""

    version: str
    plugin_version: str
    distribution: Artifact
    modules: tuple[ModuleSpec, ...]
    plugins: tuple[Artifact, ...] = field(default_factory=tuple)

    def all_artifacts(self) -> list[Artifact]:
        out = [self.distribution]
        for m in self.modules:
            out.extend(m.jars)
        out.extend(self.plugins)
        return out


_PAINLESS_POLICY = """grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";
  // needed to find the classloader to load allowlisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
"""

_MUSTACHE_POLICY = """grant {
  // needed to do crazy reflection
  permission java.lang.RuntimePermission "accessDeclaredMembers";
  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";
};
"""


def bill_for(version: str, plugin_version: str) -> NodeBill:
    """The pinned bill of materials. Only versions verified on Maven Central are listed."""
    if version != "2.19.1":
        from engine.errors import ProvisionError

        raise ProvisionError(
            f"OpenSearch {version} is not a pinned version; supported: 2.19.1",
            version=version,
        )
    osp = "org.opensearch.plugin"
    asm = "9.7"
    modules = (
        ModuleSpec(
            name="lang-painless",
            classname="org.opensearch.painless.PainlessPlugin",
            description="An easy, safe and fast scripting language for OpenSearch",
            jars=(
                Artifact(osp, "lang-painless", version),
                Artifact(osp, "opensearch-scripting-painless-spi", version),
                Artifact("org.antlr", "antlr4-runtime", "4.13.1"),
                Artifact("org.ow2.asm", "asm", asm),
                Artifact("org.ow2.asm", "asm-util", asm),
                Artifact("org.ow2.asm", "asm-tree", asm),
                Artifact("org.ow2.asm", "asm-commons", asm),
                Artifact("org.ow2.asm", "asm-analysis", asm),
            ),
            security_policy=_PAINLESS_POLICY,
        ),
        ModuleSpec(
            name="analysis-common",
            classname="org.opensearch.analysis.common.CommonAnalysisPlugin",
            description="Adds analysis components to OpenSearch",
            jars=(Artifact(osp, "analysis-common", version),),
            extended_plugins=("lang-painless",),
        ),
        ModuleSpec(
            name="mapper-extras",
            classname="org.opensearch.index.mapper.MapperExtrasPlugin",
            description="Adds advanced field mappers",
            jars=(Artifact(osp, "mapper-extras-client", version),),
        ),
        ModuleSpec(
            name="lang-mustache",
            classname="org.opensearch.script.mustache.MustachePlugin",
            description="Mustache scripting integration for OpenSearch",
            jars=(
                Artifact(osp, "lang-mustache-client", version),
                Artifact("com.github.spullara.mustache.java", "compiler", "0.9.14"),
            ),
            security_policy=_MUSTACHE_POLICY,
        ),
    )
    return NodeBill(
        version=version,
        plugin_version=plugin_version,
        distribution=Artifact(
            "org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip"
        ),
        modules=modules,
        plugins=(
            Artifact(osp, "opensearch-knn", plugin_version, "zip"),
            Artifact(osp, "neural-search", plugin_version, "zip"),
        ),
    )


def security_plugin(plugin_version: str) -> Artifact:
    """The OpenSearch security plugin (TLS, users, roles) for ``up --secure``; pinned above."""
    return Artifact("org.opensearch.plugin", "opensearch-security", plugin_version, "zip")
