
#compdef siray

_siray_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _SIRAY_COMPLETE=complete_zsh siray)
}

compdef _siray_completion siray

