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
