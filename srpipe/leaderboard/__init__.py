"""Leaderboard helpers: the papers' published figures (`published`) and the figures drawn from the table (`plots`).

The stage itself is `srpipe.stages.leaderboard`. Nothing here is imported by `import srpipe`; `plots` imports
matplotlib, so the stage imports it only when it draws.
"""
