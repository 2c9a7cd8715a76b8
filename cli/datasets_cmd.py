"""`musicrec datasets validate|import|merge|split`: labelled data set manifests."""

from __future__ import annotations

from pathlib import Path

import typer

from catalog.importers import ImportReport


def print_report(report: ImportReport, name: str) -> None:
    typer.echo(f"{name}: wrote {report.items} items in {report.groups} groups to {report.manifest}")
    typer.echo(f"  labels: {', '.join(f'{k}={v}' for k, v in sorted(report.labels.items())) or 'none'}")
    if report.excluded:
        typer.echo(f"  excluded: {', '.join(f'{k}={v}' for k, v in sorted(report.excluded.items()))}")
    for problem in report.problems:
        typer.echo(f"  problem: {problem}", err=True)


def register(app: typer.Typer) -> None:
    ds_app = typer.Typer(help="Import, validate and split labelled data set manifests.", no_args_is_help=True)
    import_app = typer.Typer(help="Convert a real data set layout into a manifest.", no_args_is_help=True)
    ds_app.add_typer(import_app, name="import")
    app.add_typer(ds_app, name="datasets")

    @ds_app.command("validate")
    def validate(manifest: Path = typer.Argument(..., help="Manifest CSV.")) -> None:
        """Check labels, files, ids and group/split consistency; list every offending row."""
        from catalog.manifest import ManifestError, read
        from catalog.manifest import validate as check

        try:
            m = read(manifest)
        except ManifestError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        problems = check(m)
        for p in problems:
            typer.echo(str(p))
        typer.echo(f"{manifest}: {len(m.items)} rows, label set {m.label_set or 'none'}, {len(problems)} problem(s)")
        raise typer.Exit(1 if problems else 0)

    @import_app.command("nju")
    def nju(root: Path, out: Path = typer.Option(..., "--out", help="Manifest to write.")) -> None:
        """NJU-MusicMood lyrics folders -> lyrics items with title/artist."""
        from catalog.importers.nju import import_nju

        print_report(import_nju(root, out), "nju")

    @import_app.command("emodb")
    def emodb(root: Path, out: Path = typer.Option(..., "--out", help="Manifest to write.")) -> None:
        """EmoDB WAVs -> speech items (W/F/T/N), grouped by speaker."""
        from catalog.importers.emodb import import_emodb

        print_report(import_emodb(root, out), "emodb")

    @import_app.command("ravdess")
    def ravdess(root: Path, out: Path = typer.Option(..., "--out", help="Manifest to write.")) -> None:
        """RAVDESS speech (Actor_NN/03-01-EE-...) -> speech items (happy/angry/sad, calm+neutral -> relaxed), grouped by actor."""
        from catalog.importers.ravdess import import_ravdess

        print_report(import_ravdess(root, out), "ravdess")

    @import_app.command("emopia")
    def emopia(
        root: Path,
        out: Path = typer.Option(..., "--out", help="Manifest to write."),
        soundfont: Path | None = typer.Option(None, "--soundfont", help="General MIDI .sf2 (default: a system one)."),
        audio_dir: Path | None = typer.Option(None, "--audio-dir", help="Render cache (default: <out folder>/emopia_audio)."),
        workers: int = typer.Option(2, "--workers", help="Parallel FluidSynth renders."),
    ) -> None:
        """EMOPIA MIDI -> audio rendered with FluidSynth (cached), grouped by song."""
        from catalog.importers.emopia import RenderError, import_emopia

        try:
            print_report(import_emopia(root, out, soundfont, audio_dir, workers), "emopia")
        except RenderError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    @import_app.command("q4")
    def q4(root: Path, out: Path = typer.Option(..., "--out", help="Manifest to write.")) -> None:
        """4Q audio emotion set (Q1..Q4 folders, Latin-1 metadata) -> audio items grouped by artist."""
        from catalog.importers.q4 import import_q4

        print_report(import_q4(root, out), "q4")

    @import_app.command("mirex")
    def mirex(root: Path, out: Path = typer.Option(..., "--out", help="Manifest to write.")) -> None:
        """MIREX-like bimodal set -> audio (+ lyrics) items labelled cluster1..cluster5, grouped by artist."""
        from catalog.importers.mirex import import_mirex

        try:
            print_report(import_mirex(root, out), "mirex")
        except FileNotFoundError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    @ds_app.command("merge")
    def merge(
        manifests: list[Path] = typer.Argument(..., help="Manifests to merge, in order."),
        out: Path = typer.Option(..., "--out", help="Merged manifest to write."),
    ) -> None:
        """One manifest from several: paths relative to the new file, ids unique, groups `<source>/<group>`, splits kept."""
        from catalog.manifest import ManifestError
        from catalog.manifest import merge as do_merge

        try:
            report = do_merge(list(manifests), out)
        except ManifestError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"merged {report.items} items in {report.groups} groups to {report.manifest}")
        typer.echo("  sources: " + ", ".join(f"{k}={v}" for k, v in report.sources.items()))
        if report.renamed_ids:
            typer.echo(f"  ids renamed to stay unique: {report.renamed_ids}")

    @ds_app.command("split")
    def split(
        manifest: Path,
        by: str = typer.Option("group", "--by", help="Only 'group' is supported: items of one group share a split."),
        val: float = typer.Option(0.15, "--val"),
        test: float = typer.Option(0.15, "--test"),
        seed: int = typer.Option(42, "--seed"),
        out: Path | None = typer.Option(None, "--out", help="Write here instead of in place."),
    ) -> None:
        """Write a group-aware, label-stratified split column."""
        from catalog.manifest import split_file

        if by != "group":
            typer.echo("error: --by must be 'group'", err=True)
            raise typer.Exit(2)
        dest, counts = split_file(manifest, val, test, seed, out)
        typer.echo(f"{dest}: " + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("train", "val", "test")))
