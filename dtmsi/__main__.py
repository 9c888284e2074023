from dtmsi.cli import main

main()
