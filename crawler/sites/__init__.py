"""Site rule files (NAME.toml) for the `site` spider; a package so they ship with musicrec."""
