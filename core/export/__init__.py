"""Exports for reports: `tables` renders a comparison Table as terminal text, Markdown, CSV, JSON, HTML
or LaTeX; `charts` draws PNG, SVG and PDF figures (matplotlib), which `painter` draws in a second
process for the chart commands.

Empty on purpose: the chart process and the CLI's parser import `painter` first, and a package that
imported its table renderers here would make each of them pay for the comparison code too.
"""
